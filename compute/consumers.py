"""The registry of what consumes compute, so quotas count every kind of resource.

A stage registers, per kind of resource, a function that lists what its
resources hold now (``register``), the way an approval kind registers with
governance. ``compute.selectors.quota_usage`` adds them all up: a notebook,
a training job and a serving endpoint count against the same quotas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Holding:
    """Compute one resource holds now (or is about to hold)."""

    resource_type: str
    resource_id: int
    project_id: int
    user_id: int
    vcpus: int
    gpus: int
    running: int  # how many "running" slots it takes (a notebook: 1)


# Lists holdings, filtered by project and/or user when given (None: all).
HoldingsLister = Callable[..., Iterable[Holding]]

_CONSUMERS: dict[str, HoldingsLister] = {}


def register(resource_type: str, holdings: HoldingsLister) -> None:
    """Count ``holdings(project_id=..., user_id=...)`` against the quotas."""
    _CONSUMERS[resource_type] = holdings


def registered() -> dict[str, HoldingsLister]:
    return dict(_CONSUMERS)
