from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Stage(models.TextChoices):
    CHARTER = "charter", "Charter"
    DATA = "data", "Data"
    WORKSPACES = "workspaces", "Workspaces"
    EXPERIMENTS = "experiments", "Experiments"
    DEPLOYMENT = "deployment", "Deployment"


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    DATA_SCIENTIST = "data_scientist", "Data scientist"
    DATA_ENGINEER = "data_engineer", "Data engineer"
    ML_ENGINEER = "ml_engineer", "ML engineer"
    ANALYST = "analyst", "Analyst"
    VALIDATOR = "validator", "Model validator"
    BUSINESS_APPROVER = "business_approver", "Business approver"


# Roles that only read project content; every other role may change it.
READ_ONLY_ROLES = frozenset({Role.ANALYST, Role.VALIDATOR, Role.BUSINESS_APPROVER})


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.CHARTER)
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=30, choices=Role.choices)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.project}"

    @property
    def can_write(self) -> bool:
        return self.role not in READ_ONLY_ROLES


PROJECT_TOKEN_PREFIX = "sgt_"  # noqa: S105 (a label, not a secret)


class ProjectToken(models.Model):
    """A credential for one project's tracking server, handed to user code
    (a workspace, a job) in place of a person's own token.

    It acts as ``user`` (whose membership is checked on every request, as for
    that user's own token) but only under ``/mlflow/<project slug>/``: every
    other endpoint of the portal refuses it. It is stored only as its sha256;
    ``purpose`` names what holds it (``workspace:12``, ``job:7``), so the
    holder's end revokes it.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["purpose"])]

    def __str__(self) -> str:
        return f"{self.purpose} of {self.project}"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
