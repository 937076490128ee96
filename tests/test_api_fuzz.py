"""Property-based fuzzing of the whole API from its own OpenAPI schema.

Schemathesis generates requests for every operation of ``/api/schema/``, valid
ones and ones that break the schema, and sends them through the WSGI app as
each role; whatever it sends, no answer may be a server error (5xx). Half of
the cases use the ids of real rows, so that requests get past the 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from accounts.services import token_create
from datasets import services as data_services
from portal.wsgi import application

# Examples per operation and role, across the four kinds of case (valid or not,
# random or real path ids); writes get more, since what they send reaches the
# database. The four roles take about three minutes.
EXAMPLES = {"GET": 2, "DELETE": 2, "POST": 12, "PATCH": 12, "PUT": 12}


@pytest.fixture
def world(
    project: Any, alice: Any, charlie: Any, admin_user: Any, settings: Any, tmp_path: Path
) -> dict[str, Any]:
    """The rows the generated requests may find: a project with sources and a rule."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.STAGEGATE_STORAGE_URL = f"file://{tmp_path / 'storage'}"
    upload = data_services.source_create(
        actor=alice, project=project, name="Customers", kind="upload", location="on_prem"
    )
    data_services.source_create(
        actor=alice,
        project=project,
        name="Warehouse",
        kind="postgres",
        config={"host": "db.example.com", "database": "dw", "user": "u", "query": "SELECT 1"},
    )
    rule = data_services.rule_create(actor=alice, source=upload, kind="not_null", column="age")
    return {
        "slug": project.slug,
        "source_id": upload.pk,
        "rule_id": rule.pk,
        "username": "bob",
        "version": 1,
        "number": 1,
    }


@pytest.fixture
def wsgi() -> Iterator[Any]:
    """The WSGI app, without closing the test's database connection (inside the
    test's transaction) at each request's start and end, as Django's test client does."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ["outsider", "member", "lead", "admin"])
def test_no_request_makes_the_api_fail(
    role: str,
    world: dict[str, Any],
    wsgi: Any,
    alice: Any,
    bob: Any,
    charlie: Any,
    admin_user: Any,
) -> None:
    user = {"outsider": charlie, "member": bob, "lead": alice, "admin": admin_user}[role]
    _, token = token_create(user=user, name="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi, headers=headers)
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema has invalid parts"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) > 30, "the schema lost its operations"
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        real = {name: value for name, value in world.items() if name in names}
        overrides: list[dict[str, Any]] = [{}, {"path_parameters": real}] if real else [{}]
        strategies = [
            operation.as_strategy(generation_mode=mode, **extra)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for extra in overrides
        ]

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=EXAMPLES.get(operation.method.upper(), 2),
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(app=wsgi, headers=headers)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)

        run()
