"""One approval mechanism for every gate, and the registry of its kinds.

A stage registers, per kind of request (``register``), how its subject is
shown on the approval page and in the API (``describe``, ``rows``), who
decides (one role, platform admins, or a chain of ``steps``), and what a
decision does (``on_approved``, ``on_rejected``, ``on_withdrawn``), the way
Django's admin registers models. ``governance.services`` enforces what every
gate shares (four eyes, the role, one decision per step) and calls the kind's
effects in the same transaction. Governance never names a stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Effect = Callable[..., None]


@dataclass(frozen=True)
class Step:
    """One sign-off in a multi-step gate: a project role, or platform admins."""

    label: str  # e.g. "Technical validation"
    role: str = ""
    staff: bool = False


def _plain_rows(subject: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (key.replace("_", " ").capitalize(), "" if value is None else str(value))
        for key, value in subject.items()
    ]


@dataclass(frozen=True)
class ApprovalKind:
    name: str
    on_approved: Effect
    on_rejected: Effect
    on_withdrawn: Effect
    # The subject in full, as plain data, for the detail page and the API.
    describe: Callable[..., dict[str, Any]]
    # (label, value) rows of the subject as people read it, from ``describe``'s data.
    rows: Callable[[dict[str, Any]], list[tuple[str, str]]] = _plain_rows
    label: str = ""  # what the request is, in words: "Charter sign-off"
    # A multi-step gate: each step is decided by someone else, in order; the
    # kind's ``on_approved`` runs when the last step is approved. Empty: one
    # step, decided by the role (or admins) the request names.
    steps: tuple[Step, ...] = ()


_KINDS: dict[str, ApprovalKind] = {}


def register(kind: ApprovalKind) -> None:
    _KINDS[kind.name] = kind


def kind_for(name: str) -> ApprovalKind:
    return _KINDS[name]


def unregister(name: str) -> None:
    """Forget a kind (tests that register their own)."""
    _KINDS.pop(name, None)
