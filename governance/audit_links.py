"""What each object named in the audit trail is called, and where its page is.

An app registers, per object type (a model label such as
``"projects.project"``), a function that takes the ids of a page of events and
answers ``{id: (name, url)}`` in one query, the way Django's admin registers
models; modules named ``audit_links`` in every installed app are imported when
governance starts. The audit page asks once per object type on a page, so its
query count does not grow with its rows. An object with no resolver, or gone
since, is named by its type and id, without a link.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.urls import reverse

Link = tuple[str, str]  # (name as people read it, URL of its page or "")
Resolver = Callable[[list[int]], dict[int, Link]]

_RESOLVERS: dict[str, Resolver] = {}


def register(object_type: str, resolver: Resolver) -> None:
    _RESOLVERS[object_type] = resolver


def _fallback_name(object_type: str, object_id: str) -> str:
    try:
        label = str(apps.get_model(object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        label = object_type.rsplit(".", 1)[-1]
    return f"{label} {object_id}".strip()


def links_for(events: Iterable[Any]) -> None:
    """Set ``link_name`` and ``link_url`` on each event: one query per object type."""
    events = list(events)
    wanted: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.object_type in _RESOLVERS and str(event.object_id).isdigit():
            wanted[event.object_type].add(int(event.object_id))
    found = {kind: _RESOLVERS[kind](sorted(ids)) for kind, ids in wanted.items()}
    for event in events:
        link: Link | None = None
        if str(event.object_id).isdigit():
            link = found.get(event.object_type, {}).get(int(event.object_id))
        if link is None and event.object_type:
            link = (_fallback_name(event.object_type, event.object_id), "")
        event.link_name, event.link_url = link or ("", "")


# --- The core's own objects ----------------------------------------------------------


def _approvals(ids: list[int]) -> dict[int, Link]:
    from governance.models import ApprovalRequest

    rows = ApprovalRequest.objects.filter(pk__in=ids).only("pk", "summary")
    return {
        r.pk: (f"request “{r.summary[:80]}”", reverse("governance:approval", args=[r.pk]))
        for r in rows
    }


def _projects(ids: list[int]) -> dict[int, Link]:
    from projects.models import Project

    rows = Project.objects.filter(pk__in=ids).only("pk", "name", "slug")
    return {p.pk: (f"project “{p.name}”", reverse("projects:detail", args=[p.slug])) for p in rows}


def _memberships(ids: list[int]) -> dict[int, Link]:
    from projects.models import Membership

    rows = Membership.objects.filter(pk__in=ids).select_related("user", "project")
    return {
        m.pk: (
            f"{m.user.username}'s membership of “{m.project.name}”",
            reverse("projects:detail", args=[m.project.slug]),
        )
        for m in rows
    }


def _users(ids: list[int]) -> dict[int, Link]:
    from accounts.models import User

    return {u.pk: (f"user {u.username}", "") for u in User.objects.filter(pk__in=ids)}


register("governance.approvalrequest", _approvals)
register("projects.project", _projects)
register("projects.membership", _memberships)
register("accounts.user", _users)
