from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from accounts.models import User
from charter.models import CharterStatus, CharterVersion
from projects.models import Membership, Project, Role

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.DATA_SCIENTIST


def charter_signed_off(project: Project, *, by: Any = None, author: Any = None) -> CharterVersion:
    """A signed-off charter for ``project``, written straight to the table (no approval
    request, no audit event): the precondition of the gates of later stages."""
    now = timezone.now()
    number = (
        project.charters.order_by("-number").values_list("number", flat=True).first() or 0
    ) + 1
    return CharterVersion.objects.create(
        project=project,
        number=number,
        status=CharterStatus.APPROVED,
        business_problem="Customers leave without warning.",
        question_type="classification",
        target_variable="churned",
        success_metric="roc_auc",
        threshold=0.8,
        direction="higher",
        deployment_mode="batch",
        created_by=author,
        submitted_by=author,
        submitted_at=now,
        decided_by=by,
        decided_at=now,
    )
