"""Data sources, their content-addressed snapshots, profiles, validation
rules and train/test splits."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from background.models import Leased
from datasets.readers import Dialect
from projects.models import Project


class SourceKind(models.TextChoices):
    UPLOAD = "upload", "File upload"
    POSTGRES = "postgres", "PostgreSQL query"
    AZURE_BLOB = "azure_blob", "Azure Blob / ADLS"
    HTTPS = "https", "HTTPS URL"


class Location(models.TextChoices):
    ON_PREM = "on_prem", "On-premises"
    CLOUD = "cloud", "Cloud"


class Mode(models.TextChoices):
    BATCH = "batch", "Batch"
    STREAMING = "streaming", "Streaming"


class DataFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class ConnectionStatus(models.TextChoices):
    NEVER = "never", "Not tested"
    PENDING = "pending", "Queued"
    RUNNING = "running", "Testing"
    OK = "ok", "Connected"
    FAILED = "failed", "Failed"


class DataSource(Leased):
    """Where a project's data comes from. Credentials live only in
    ``secrets_encrypted`` (MultiFernet); ``secret_names`` says which are set.
    Its lease is that of its connection test."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="data_sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    description = models.TextField(blank=True)
    location = models.CharField(max_length=20, choices=Location.choices, default=Location.CLOUD)
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.BATCH)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Non-secret connection settings (host, port, database, user, query,
    # account, container, path, endpoint, url, format).
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    secret_names = models.JSONField(default=list, blank=True)
    refresh_cron = models.CharField(max_length=100, blank=True)
    test_status = models.CharField(
        max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.NEVER
    )
    test_message = models.CharField(max_length=500, blank=True)
    tested_at = models.DateTimeField(null=True, blank=True)
    # Registered before the project's charter was signed off: the data is
    # explored, not yet agreed on. Fixed at registration (a later sign-off
    # does not make the earlier registration agreed); its versions inherit it.
    exploratory = models.BooleanField(default=False)
    # Columns about people that must not leave the data stage in logs: a
    # model served from this source's data never writes them to its sampled
    # request log (docs/serving.md, Drift).
    sensitive_columns = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="datasource_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def periodic_task_name(self) -> str:
        return f"datasets.source.{self.pk}.refresh"


class IngestionStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "New version"
    UNCHANGED = "unchanged", "Unchanged"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    UPLOAD = "upload", "Upload"
    MANUAL = "manual", "Pull now"
    SCHEDULE = "schedule", "Schedule"


class Ingestion(Leased):
    """One upload or pull of a source: the history and the progress bar."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="ingestions")
    status = models.CharField(
        max_length=20, choices=IngestionStatus.choices, default=IngestionStatus.PENDING
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    data_format = models.CharField(max_length=20, choices=DataFormat.choices, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    # For uploads: the staged object (already hashed) waiting to be parsed.
    staging_key = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    rows_processed = models.BigIntegerField(default=0)
    bytes_processed = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    snapshot = models.ForeignKey(
        "Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.source} ingestion {self.pk} ({self.status})"

    @property
    def is_done(self) -> bool:
        return self.status in (
            IngestionStatus.SUCCEEDED,
            IngestionStatus.UNCHANGED,
            IngestionStatus.FAILED,
        )

    @property
    def percent(self) -> int:
        if self.is_done:
            return 100
        if self.bytes_total:
            return min(99, int(100 * self.bytes_processed / self.bytes_total))
        return 0


class ValidationStatus(models.TextChoices):
    VALID = "valid", "Valid"
    INVALID = "invalid", "Invalid"


class Snapshot(models.Model):
    """One immutable version of a source's data, stored by its sha256."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    data_format = models.CharField(max_length=20, choices=DataFormat.choices)
    rows = models.BigIntegerField()
    columns = models.JSONField(default=list)
    storage_key = models.CharField(max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    # How a CSV was read (blank for Parquet, and for versions made before
    # this was recorded, which were read as comma-separated UTF-8).
    csv_delimiter = models.CharField(max_length=4, blank=True)
    csv_encoding = models.CharField(max_length=20, blank=True)
    csv_detected = models.BooleanField(default=False)
    validation_status = models.CharField(
        max_length=20, choices=ValidationStatus.choices, default=ValidationStatus.VALID
    )
    validation_results = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["source", "version"], name="snapshot_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.source.name} v{self.version}"

    @property
    def is_valid(self) -> bool:
        return self.validation_status == ValidationStatus.VALID

    @property
    def csv_dialect(self) -> Dialect | None:
        if self.data_format != DataFormat.CSV:
            return None
        return Dialect(
            delimiter=self.csv_delimiter or ",",
            encoding=self.csv_encoding or "utf-8",
            detected=self.csv_detected,
        )


class ProfileStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Profiling"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Profile(Leased):
    """The EDA of one snapshot, computed once."""

    snapshot = models.OneToOneField(Snapshot, on_delete=models.CASCADE, related_name="profile")
    status = models.CharField(
        max_length=20, choices=ProfileStatus.choices, default=ProfileStatus.PENDING
    )
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.snapshot_id} ({self.status})"


class RuleKind(models.TextChoices):
    REQUIRED = "required", "Required column"
    TYPE = "type", "Column type"
    NOT_NULL = "not_null", "Not null"
    RANGE = "range", "Range"
    ALLOWED = "allowed", "Allowed values"
    UNIQUE = "unique", "Unique"
    MIN_ROWS = "min_rows", "Minimum row count"


class ValidationRule(models.Model):
    """A check every new snapshot of the source must pass."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    column = models.CharField(max_length=200, blank=True)
    # type: {"type": "integer"|"float"|"string"|"boolean"|"datetime"};
    # range: {"min": x, "max": y}; allowed: {"values": [...]}; min_rows: {"min": n}
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.column}".strip()


class SplitStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Splitting"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Split(Leased):
    """A deterministic train/test split of one snapshot, versioned per source."""

    parent = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="splits")
    number = models.PositiveIntegerField()
    test_fraction = models.FloatField()
    seed = models.BigIntegerField()
    stratify_column = models.CharField(max_length=200, blank=True)
    group_column = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=SplitStatus.choices, default=SplitStatus.PENDING
    )
    train_sha256 = models.CharField(max_length=64, blank=True)
    train_rows = models.BigIntegerField(null=True, blank=True)
    train_size = models.BigIntegerField(null=True, blank=True)
    test_sha256 = models.CharField(max_length=64, blank=True)
    test_rows = models.BigIntegerField(null=True, blank=True)
    test_size = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["parent", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "number"], name="split_unique_number"),
        ]

    def __str__(self) -> str:
        return f"split {self.number} of {self.parent}"
