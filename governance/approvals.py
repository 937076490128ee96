"""One approval mechanism for every gate.

An app registers, per kind of request, what happens when a request is approved
or rejected (``register``); ``governance.services.approval_decide`` enforces the
rules common to all gates (four eyes, role, one decision) and calls it in the
same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Effect = Callable[..., None]


@dataclass(frozen=True)
class ApprovalKind:
    name: str
    on_approved: Effect
    on_rejected: Effect
    on_withdrawn: Effect
    # The subject in full, as plain data, for the detail page and the API.
    describe: Callable[..., dict[str, Any]]


_KINDS: dict[str, ApprovalKind] = {}


def register(kind: ApprovalKind) -> None:
    _KINDS[kind.name] = kind


def kind_for(name: str) -> ApprovalKind:
    return _KINDS[name]
