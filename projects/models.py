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


class CharterStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Awaiting sign-off"
    APPROVED = "approved", "Signed off"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


class CharterVersion(models.Model):
    """One version of a project's charter. Only a draft changes; submitting
    freezes it, and an edit after that opens the next version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="charters")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=20, choices=CharterStatus.choices, default=CharterStatus.DRAFT
    )
    business_problem = models.TextField(blank=True)
    objective = models.TextField(blank=True, help_text="The decision the model supports.")
    question_type = models.CharField(max_length=30, blank=True)
    target_variable = models.CharField(max_length=200, blank=True)
    success_metric = models.CharField(max_length=30, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    direction = models.CharField(max_length=10, blank=True)
    scope = models.TextField(blank=True)
    out_of_scope = models.TextField(blank=True)
    data_sources = models.JSONField(default=list, blank=True)
    deployment_mode = models.CharField(max_length=20, blank=True)
    stakeholders = models.TextField(blank=True)
    cost_ceiling = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="charter_unique_number"),
            # At most one draft per project at a time.
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status="draft"),
                name="charter_one_draft",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} charter v{self.number} ({self.status})"

    @property
    def is_draft(self) -> bool:
        return self.status == CharterStatus.DRAFT
