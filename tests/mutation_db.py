"""A pytest plugin for mutation runs (``-p tests.mutation_db``, set in
pyproject.toml's [tool.mutmut]).

mutmut runs the tests of each mutant in a process forked for it, several at
once. Each process takes a free slot and that slot's own test database; the
first run in a slot builds it (migrations included), the later runs use it as
it is, which saves the migration check that would otherwise cost more than the
tests of a mutant.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

_slots: dict[int, tuple[int, IO[str]]] = {}  # pid -> (slot, the lock it holds)
_base_name: list[str] = []  # the database's own name, before any test run renamed it


def _slot_dir() -> Path:
    directory = Path(os.environ.get("STAGEGATE_VAR_DIR", ".")) / "mutation-slots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _slot() -> int:
    """This process's slot: the lowest one no other live process holds (a lock
    on a file, released when the process ends). A forked child takes its own."""
    pid = os.getpid()
    if pid in _slots:
        return _slots[pid][0]
    slot = 0
    while True:
        handle = (_slot_dir() / f"{slot}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            slot += 1
            continue
        _slots[pid] = (slot, handle)
        return slot


class _SlotDatabase:
    @pytest.fixture(scope="session")
    def django_db_setup(
        self, django_test_environment: None, django_db_blocker: Any
    ) -> Iterator[None]:
        from django.db import connections
        from django.test.utils import setup_databases

        ready = _slot_dir() / f"{_slot()}.ready"
        if ready.exists():
            for connection in connections.all():
                connection.close()
                connection.settings_dict["NAME"] = connection.settings_dict["TEST"]["NAME"]
        else:
            with django_db_blocker.unblock():
                setup_databases(verbosity=0, interactive=False, keepdb=True)
            ready.touch()
        yield


def pytest_configure(config: Any) -> None:
    from django.conf import settings

    database = settings.DATABASES["default"]
    if not _base_name:
        _base_name.append(database["NAME"])
    database.setdefault("TEST", {})["NAME"] = f"test_{_base_name[0]}_mutation{_slot()}"
    # Registered after pytest-django, so this django_db_setup is the one used.
    config.pluginmanager.register(_SlotDatabase(), "stagegate-mutation-db")


def pytest_unconfigure(config: Any) -> None:
    # A forked child must not inherit this process's database connection.
    from django.db import connections

    connections.close_all()
