from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"
    SUPERSEDED = "superseded", "Superseded"


class ApprovalRequest(models.Model):
    """One request for a decision at a gate: a charter version, compute over
    quota, a deployment. ``subject_type``/``subject_id`` name what is to be
    approved; ``required_role`` is the project role that may decide, or empty
    with ``requires_staff`` for platform admins."""

    kind = models.CharField(max_length=50)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="approval_requests"
    )
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=100)
    summary = models.CharField(max_length=300)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests"
    )
    required_role = models.CharField(max_length=30, blank=True)
    requires_staff = models.BooleanField(default=False)
    state = models.CharField(
        max_length=20, choices=ApprovalState.choices, default=ApprovalState.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Multi-step gates: which step this request is (0 first), and the request
    # of the step before, approved, that opened it.
    step = models.PositiveSmallIntegerField(default=0)
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="next_step"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "project"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary} ({self.state})"
