from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from projects.models import Project

CHARTER_KIND = "charter"  # the approval kind of a charter sign-off


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
