"""Writes to projects and their memberships, each audited in its transaction."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.models import User
from audit.services import audit_record
from projects.models import Membership, Project, Role


def project_slug(*, name: str, slug: str = "") -> str:
    """The project's address: ``slug`` or else one made from the name, lower case."""
    made = slugify(slug or name).lower()[:80].strip("-")
    if not made:
        raise ValidationError(
            {"slug": "Give a slug: the name has no letters or digits to make one from."}
        )
    return made


def project_create(
    *, actor: User, name: str, slug: str = "", description: str = "", monthly_budget: Any = 0
) -> Project:
    """Create a project; its creator becomes its lead. The slug is lower case and
    unique regardless of case; without one it is made from the name."""
    slug = project_slug(name=name, slug=slug)
    if Project.objects.filter(slug__iexact=slug).exists():
        raise ValidationError({"slug": f"A project with the slug “{slug}” already exists."})
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name,
                slug=slug,
                description=description,
                monthly_budget=monthly_budget,
                created_by=actor,
            )
            Membership.objects.create(project=project, user=actor, role=Role.LEAD)
            audit_record(
                action="project.created",
                actor=actor,
                project=project,
                obj=project,
                payload={"name": name, "slug": slug},
            )
    except IntegrityError as exc:
        raise ValidationError(
            {"slug": f"A project with the slug “{slug}” already exists."}
        ) from exc
    return project


def _require_lead(actor: User, project: Project) -> None:
    if not Membership.objects.filter(project=project, user=actor, role=Role.LEAD).exists():
        raise PermissionDenied("Only a project lead manages members.")


def membership_add(*, actor: User, project: Project, user: User, role: str) -> Membership:
    """Add a member with a role (leads only)."""
    _require_lead(actor, project)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    with transaction.atomic():
        if Membership.objects.filter(project=project, user=user).exists():
            raise ValidationError({"username": f"{user.username} is already a member."})
        membership = Membership.objects.create(project=project, user=user, role=role)
        audit_record(
            action="membership.added",
            actor=actor,
            project=project,
            obj=membership,
            payload={"username": user.username, "role": role},
        )
    return membership


def membership_remove(*, actor: User, project: Project, user: User) -> None:
    """Remove a member (leads only); a project always keeps one lead."""
    _require_lead(actor, project)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().filter(project=project, user=user).first()
        )
        if membership is None:
            raise ValidationError({"username": f"{user.username} is not a member."})
        if (
            membership.role == Role.LEAD
            and Membership.objects.filter(project=project, role=Role.LEAD).count() == 1
        ):
            raise ValidationError({"username": "A project must keep at least one lead."})
        audit_record(
            action="membership.removed",
            actor=actor,
            project=project,
            obj=membership,
            payload={"username": user.username, "role": membership.role},
        )
        membership.delete()


def project_update(*, actor: User, project: Project, **changes: Any) -> Project:
    """Change a project's name, description or budget (leads only)."""
    _require_lead(actor, project)
    allowed = {"name", "description", "monthly_budget"}
    changed = {k: v for k, v in changes.items() if k in allowed and getattr(project, k) != v}
    if not changed:
        return project
    with transaction.atomic():
        for field, value in changed.items():
            setattr(project, field, value)
        project.save(update_fields=list(changed))
        audit_record(
            action="project.updated",
            actor=actor,
            project=project,
            obj=project,
            payload={"changed": sorted(changed)},
        )
    return project


def project_stage_set(*, actor: User, project: Project, stage: str, reason: str) -> None:
    """Move the project to ``stage`` (audited); setting the same stage changes nothing."""
    previous = project.stage
    if previous == stage:
        return
    project.stage = stage
    project.save(update_fields=["stage"])
    audit_record(
        action="project.stage_changed",
        actor=actor,
        project=project,
        obj=project,
        payload={"from": previous, "to": stage, "reason": reason},
    )
