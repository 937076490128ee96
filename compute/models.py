"""Compute accounting: the size catalog, quotas, budgets and metered usage.

Knows no stage: a workspace, a training job or a serving endpoint is a
"resource" here, named by its model label and primary key.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

HOURS_PER_MONTH = Decimal(730)  # what cloud price lists use for "per month"


class ComputeSize(models.Model):
    """A size in the catalog, with its list price per hour at ``price_date``."""

    name = models.CharField(max_length=64)
    provider = models.CharField(
        max_length=20,
        default="azure",
        help_text="Whose list price this is. The local provider runs any size, capped by the machine.",
    )
    region = models.CharField(max_length=40, blank=True)
    vcpus = models.PositiveIntegerField()
    memory_gb = models.DecimalField(max_digits=7, decimal_places=1)
    gpus = models.PositiveIntegerField(default=0)
    gpu_type = models.CharField(max_length=60, blank=True)
    hourly_price = models.DecimalField(max_digits=10, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")
    price_date = models.DateField()
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["gpus", "hourly_price", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="computesize_unique_name"),
            models.CheckConstraint(
                condition=models.Q(hourly_price__gte=0), name="computesize_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        gpu = f", {self.gpus}× {self.gpu_type or 'GPU'}" if self.gpus else ""
        return f"{self.name} ({self.vcpus} vCPU, {self.memory_gb} GB{gpu})"

    @property
    def monthly_price(self) -> Decimal:
        return (self.hourly_price * HOURS_PER_MONTH).quantize(Decimal("0.01"))


class Quota(models.Model):
    """Limits for one project or one user (exactly one of the two is set).

    ``monthly_budget`` of a project quota overrides the project's own budget
    when set; a user's applies to what that user spends across projects.
    Empty or zero means no budget.
    """

    project = models.OneToOneField(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compute_quota",
    )
    max_vcpus = models.PositiveIntegerField()
    max_gpus = models.PositiveIntegerField()
    max_running = models.PositiveIntegerField()
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(project__isnull=False, user__isnull=True)
                    | models.Q(project__isnull=True, user__isnull=False)
                ),
                name="quota_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.project or self.user}"


class UsageInterval(models.Model):
    """One stretch of time a resource held compute, at the size and price of the time.

    The resource is anything that consumes compute (a workspace, a training
    job, a serving endpoint), named by its model label and primary key; the
    compute layer knows no stage's models. A closed interval lies within one
    UTC day (closing splits it), so daily and monthly sums are plain
    aggregates of ``cost``.
    """

    resource_type = models.CharField(max_length=100)  # e.g. "workspaces.workspace"
    resource_id = models.PositiveBigIntegerField()
    resource_name = models.CharField(max_length=200, blank=True)  # as shown on cost pages
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    size = models.ForeignKey(ComputeSize, on_delete=models.PROTECT, related_name="+")
    size_name = models.CharField(max_length=64)
    hourly_price = models.DecimalField(max_digits=10, decimal_places=4)
    nodes = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    day = models.DateField(db_index=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["resource_type", "resource_id"])]
        constraints = [
            # At most one open interval per resource.
            models.UniqueConstraint(
                fields=["resource_type", "resource_id"],
                condition=models.Q(ended_at__isnull=True),
                name="usage_one_open_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.size_name} from {self.started_at:%Y-%m-%d %H:%M}"

    def cost_until(self, end: datetime) -> Decimal:
        seconds = Decimal(max(0.0, (end - self.started_at).total_seconds()))
        return self.hourly_price * self.nodes * seconds / Decimal(3600)


class BudgetAlert(models.Model):
    """A budget threshold crossed in a month, so that it is announced once."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    percent = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "month", "percent"], name="budgetalert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.percent}% of the {self.month:%Y-%m} budget of project {self.project_id}"
