"""Writes to data sources, snapshots, rules and splits.

Each write runs in one transaction with its audit event; slow work (pulls,
parsing, profiles, splits) is queued on the ``data`` queue after commit.
Secrets are decrypted only inside the worker's connection code and never
leave it: not in task arguments, audit payloads, logs or error messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
from celery import Task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from background.leases import LeasedWork, lease_recover, lease_waiting
from charter.gates import require_signed_charter
from charter.selectors import charter_current, charter_signed_off
from datasets import connectors, tasks
from datasets.crypto import secrets_decrypt, secrets_encrypt
from datasets.egress import EgressRefused
from datasets.models import (
    ConnectionStatus,
    DataSource,
    Ingestion,
    IngestionStatus,
    Profile,
    ProfileStatus,
    RuleKind,
    Snapshot,
    SourceKind,
    Split,
    SplitStatus,
    Trigger,
    ValidationRule,
    ValidationStatus,
)
from datasets.profiling import profile_table
from datasets.readers import (
    AUTO,
    DELIMITER_SETTINGS,
    DETECT_BYTES,
    ENCODINGS,
    FORMATS,
    Dialect,
    csv_dialect,
    format_for_name,
    read_table,
    sniff,
    table_columns,
)
from datasets.rules import evaluate, rule_errors
from datasets.schedules import shortest_gap_minutes
from datasets.splitting import split_indices, table_bytes
from datasets.storage import ObjectStore, Staged, TooLarge, default_store, file_chunks, object_key
from projects.models import Membership, Project

logger = logging.getLogger(__name__)

# kind -> (config fields, required config fields, secret fields)
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    SourceKind.UPLOAD: (("format", "delimiter", "encoding"), (), ()),
    SourceKind.POSTGRES: (
        ("host", "port", "database", "user", "query"),
        ("host", "database", "user", "query"),
        ("password",),
    ),
    SourceKind.AZURE_BLOB: (
        ("account", "container", "path", "endpoint", "format", "delimiter", "encoding"),
        ("account", "container", "path"),
        ("account_key", "sas_token"),
    ),
    # user + the password secret: HTTP Basic authentication.
    SourceKind.HTTPS: (("url", "user", "format", "delimiter", "encoding"), ("url",), ("password",)),
}
STORAGE_FIELDS = ("container", "path")
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
PROGRESS_EVERY_SECONDS = 0.5


class SourceInUse(Exception):
    """A delete that would remove data a split (or model) uses; HTTP 409."""


class TransientSourceError(Exception):
    """A failure worth retrying; its message carries no secret."""


# --- Helpers -----------------------------------------------------------------


def _scrub_message(message: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            message = message.replace(value, "[redacted]")
    # Signed URLs carry their signature in the query string.
    message = re.sub(r"(sig|se|sv|sp|st|spr|srt|ss|sr)=[^&\s'\"]+", r"\1=[redacted]", message)
    return message[:500]


def _clean_storage_value(name: str, value: str) -> str | None:
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        return f"{name} must be a relative path, not an absolute one."
    if ".." in re.split(r"[/\\]", value):
        return f"{name} must not contain '..'."
    if "\\" in value:
        return f"{name} must use forward slashes."
    return None


# A DNS name or an IPv4/IPv6 address: letters, digits, '-', '.', ':' and '_'.
HOST_RE = re.compile(r"^(?![-.])[A-Za-z0-9_.:-]{1,253}$")


def _url_problem(value: str, *, schemes: tuple[str, ...]) -> str | None:
    """Why a source's URL cannot be used, checked when it is registered."""
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return f"Not a valid URL: {exc}."  # urlsplit's words, e.g. "Invalid IPv6 URL"
    if parts.scheme.lower() not in schemes:
        return f"Only {' or '.join(s + '://' for s in schemes)} URLs are allowed."
    if "@" in parts.netloc:
        return (
            "Do not put credentials in the URL (user:password@): give the user name "
            "in the User field and the password in the Password secret, stored encrypted."
        )
    try:
        port = parts.port
    except ValueError:
        return "Give a port between 1 and 65535."
    host = parts.hostname or ""
    if not host:
        return "The URL has no host."
    if not HOST_RE.match(host):
        return f"{host!r} is not a valid host name."
    if port == 0:
        return "Give a port between 1 and 65535."
    if any(c.isspace() for c in value):
        return "A URL cannot contain spaces."
    return None


def _clean_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    fields, required, _ = KIND_FIELDS[kind]
    errors: dict[str, str] = {}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        errors["config"] = f"Unknown settings for a {kind} source: {', '.join(unknown)}."
    cleaned: dict[str, Any] = {}
    for name in fields:
        value = config.get(name)
        if value in (None, ""):
            if name in required:
                errors[name] = "This field is required."
            continue
        if name == "port":
            try:
                port = int(value)
            except (TypeError, ValueError):
                errors[name] = "Give a port number."
                continue
            if not 0 < port < 65536:
                errors[name] = "Give a port between 1 and 65535."
            cleaned[name] = port
            continue
        if not isinstance(value, str):
            errors[name] = "Give text."
            continue
        if name == "delimiter":
            value = "tab" if value == "\t" else value.strip()
            if value not in (AUTO, *DELIMITER_SETTINGS):
                errors[name] = f"Choose {AUTO}, {', '.join(DELIMITER_SETTINGS)}."
            cleaned[name] = value
            continue
        value = value.strip()
        if name == "encoding" and value not in (AUTO, *ENCODINGS):
            errors[name] = f"Choose {AUTO}, {', '.join(ENCODINGS)}."
        if name in STORAGE_FIELDS:
            problem = _clean_storage_value(name, value)
            if problem:
                errors[name] = problem
        if name == "format" and value not in FORMATS:
            errors[name] = "Choose csv or parquet."
        if name == "url":
            problem = _url_problem(value, schemes=("https",))
            if problem:
                errors[name] = problem
        if name == "endpoint":
            problem = _url_problem(value, schemes=("https", "http"))
            if problem or not re.match(r"^https?://[^/\s]+/?[^\s]*$", value):
                errors[name] = problem or "Give the blob endpoint as a URL."
        if name == "host" and not HOST_RE.match(value):
            errors[name] = "Give a host name or an IP address."
        if name == "query" and not re.match(r"^\s*(select|with|values|table)\b", value, re.I):
            errors[name] = "Give one SELECT query."
        cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_secrets(kind: str, secrets: dict[str, Any]) -> dict[str, str]:
    allowed = KIND_FIELDS[kind][2]
    unknown = sorted(set(secrets) - set(allowed))
    if unknown:
        raise ValidationError({"secrets": f"Unknown secrets for a {kind} source: {unknown}."})
    return {k: str(v) for k, v in secrets.items() if v is not None}


def _clean_cron(cron: str) -> str:
    from celery.schedules import crontab

    cron = " ".join(cron.split())
    if not cron:
        return ""
    parts = cron.split(" ")
    if len(parts) != 5:
        raise ValidationError(
            {"refresh_cron": "Give five fields: minute hour day-of-month month day-of-week."}
        )
    try:
        schedule = crontab(**dict(zip(CRON_FIELDS, parts, strict=True)))
    except (ValueError, TypeError) as exc:
        raise ValidationError({"refresh_cron": f"Not a valid cron expression: {exc}"}) from exc
    gap, minimum = shortest_gap_minutes(schedule), settings.DATA_REFRESH_MIN_MINUTES
    if gap is not None and gap < minimum:
        raise ValidationError(
            {
                "refresh_cron": f"This would pull every {gap} minutes; "
                f"the shortest interval allowed is {minimum} minutes."
            }
        )
    return cron


def _schedule_sync(source: DataSource) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    name = source.periodic_task_name
    if not source.refresh_cron:
        PeriodicTask.objects.filter(name=name).delete()
        return
    values = dict(zip(CRON_FIELDS, source.refresh_cron.split(" "), strict=True))
    schedule = CrontabSchedule.objects.filter(**values, timezone=settings.TIME_ZONE).first()
    if schedule is None:
        schedule = CrontabSchedule.objects.create(**values, timezone=settings.TIME_ZONE)
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": "datasets.tasks.source_refresh",
            "crontab": schedule,
            "interval": None,
            "kwargs": json.dumps({"source_id": source.pk}),
            "queue": "data",
            "enabled": True,
        },
    )


def _charter_for(project: Project) -> Any:
    return charter_signed_off(project=project) or charter_current(project=project)


def _exploratory(project: Project) -> bool:
    """Whether data registered now is exploratory (no signed-off charter yet).

    With ``STAGEGATE_DATA_REQUIRES_SIGNOFF`` registration waits for the
    sign-off instead: :class:`charter.gates.CharterNotSignedOff`.
    """
    if settings.STAGEGATE_DATA_REQUIRES_SIGNOFF:
        require_signed_charter(project, purpose="registering data")
        return False
    return charter_signed_off(project=project) is None


def _queue(task: Task, **kwargs: int) -> None:
    transaction.on_commit(lambda: task.delay(**kwargs))


def _source_payload(source: DataSource) -> dict[str, Any]:
    return {
        "name": source.name,
        "kind": source.kind,
        "location": source.location,
        "mode": source.mode,
        "config": source.config,
        "refresh_cron": source.refresh_cron,
    }


# --- Sources -------------------------------------------------------------------


def _check_owner(project: Project, owner: User | None) -> None:
    if owner is not None and not Membership.objects.filter(project=project, user=owner).exists():
        raise ValidationError({"owner": "The owner must be a member of the project."})


def source_create(
    *,
    actor: User,
    project: Project,
    name: str,
    kind: str,
    description: str = "",
    location: str = "cloud",
    mode: str = "batch",
    owner: User | None = None,
    config: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    refresh_cron: str = "",
) -> DataSource:
    """Register a data source; its secrets are stored encrypted only."""
    if kind not in KIND_FIELDS:
        raise ValidationError({"kind": f"Unknown kind {kind!r}."})
    cleaned = _clean_config(kind, config or {})
    secret_values = {k: v for k, v in _clean_secrets(kind, secrets or {}).items() if v}
    cron = _clean_cron(refresh_cron)
    if cron and kind == SourceKind.UPLOAD:
        raise ValidationError({"refresh_cron": "Upload sources have nothing to pull."})
    _check_owner(project, owner or actor)
    try:
        with transaction.atomic():
            exploratory = _exploratory(project)
            source = DataSource.objects.create(
                project=project,
                name=name,
                kind=kind,
                description=description,
                location=location,
                mode=mode,
                owner=owner or actor,
                config=cleaned,
                secrets_encrypted=secrets_encrypt(secret_values),
                secret_names=sorted(secret_values),
                refresh_cron=cron,
                exploratory=exploratory,
            )
            _schedule_sync(source)
            audit_record(
                action="datasource.created",
                actor=actor,
                project=project,
                obj=source,
                payload={**_source_payload(source), "exploratory": exploratory},
            )
    except IntegrityError as exc:
        raise ValidationError({"name": "A source with this name already exists."}) from exc
    return source


def source_update(*, actor: User, source: DataSource, **changes: Any) -> DataSource:
    """Change a source's settings; secrets given replace those stored, an
    empty value removes one."""
    allowed = {
        "name",
        "description",
        "location",
        "mode",
        "owner",
        "config",
        "refresh_cron",
        "sensitive_columns",
    }
    unknown = set(changes) - allowed - {"secrets"}
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "This cannot be changed."))
    changed: list[str] = []
    if "config" in changes:
        merged = {**source.config, **(changes.pop("config") or {})}
        merged = {k: v for k, v in merged.items() if v not in (None, "")}
        changes["config"] = _clean_config(source.kind, merged)
    if "refresh_cron" in changes:
        changes["refresh_cron"] = _clean_cron(changes["refresh_cron"] or "")
        if changes["refresh_cron"] and source.kind == SourceKind.UPLOAD:
            raise ValidationError({"refresh_cron": "Upload sources have nothing to pull."})
    if "sensitive_columns" in changes:
        changes["sensitive_columns"] = _clean_sensitive(source, changes["sensitive_columns"])
    new_secrets = _clean_secrets(source.kind, changes.pop("secrets", None) or {})
    if "owner" in changes:
        _check_owner(source.project, changes["owner"])
    try:
        with transaction.atomic():
            source = DataSource.objects.select_for_update().get(pk=source.pk)
            for field, value in changes.items():
                if getattr(source, field) != value:
                    setattr(source, field, value)
                    changed.append(field)
            if new_secrets:
                stored = secrets_decrypt(source.secrets_encrypted)
                stored.update(new_secrets)
                stored = {k: v for k, v in stored.items() if v}
                source.secrets_encrypted = secrets_encrypt(stored)
                source.secret_names = sorted(stored)
                changed += ["secrets_encrypted", "secret_names"]
            if not changed:
                return source
            source.save(update_fields=changed)
            if "refresh_cron" in changed:
                _schedule_sync(source)
            audit_record(
                action="datasource.updated",
                actor=actor,
                project=source.project,
                obj=source,
                payload={
                    "changed": sorted(
                        {"secrets" if f.startswith("secret") else f for f in changed}
                    ),
                    "updated": sorted(new_secrets),
                    **(
                        {"sensitive_columns": source.sensitive_columns}
                        if "sensitive_columns" in changed
                        else {}
                    ),
                },
            )
    except IntegrityError as exc:
        raise ValidationError({"name": "A source with this name already exists."}) from exc
    return source


MAX_SENSITIVE_COLUMNS = 500


def _clean_sensitive(source: DataSource, value: Any) -> list[str]:
    """Column names, each once, sorted; columns of the latest version when
    the source has one (a column it does not have is a typo, not a mark)."""
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise ValidationError({"sensitive_columns": "Give a list of column names."})
    names = sorted({c.strip() for c in value if c.strip()})
    if len(names) > MAX_SENSITIVE_COLUMNS:
        raise ValidationError(
            {"sensitive_columns": f"At most {MAX_SENSITIVE_COLUMNS} columns can be marked."}
        )
    if any(len(c) > 200 for c in names):
        raise ValidationError({"sensitive_columns": "Column names are at most 200 characters."})
    latest = source.snapshots.order_by("-version").values_list("version", "columns").first()
    if latest is not None:
        version, columns = latest
        known = {str(c.get("name")) if isinstance(c, dict) else str(c) for c in columns}
        unknown = [c for c in names if c not in known]
        if unknown:
            raise ValidationError(
                {
                    "sensitive_columns": f"Version {version} has no column named "
                    + ", ".join(repr(c) for c in unknown[:5])
                    + "."
                }
            )
    return names


def _objects_unreferenced(keys: set[str]) -> set[str]:
    if not keys:
        return set()
    shas = {k.rsplit("/", 2)[-2] + k.rsplit("/", 1)[-1] for k in keys}
    used = set(Snapshot.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
    used |= set(Split.objects.filter(train_sha256__in=shas).values_list("train_sha256", flat=True))
    used |= set(Split.objects.filter(test_sha256__in=shas).values_list("test_sha256", flat=True))
    return {object_key(s) for s in shas - used}


def _delete_objects_later(keys: set[str]) -> None:
    def collect() -> None:
        store = default_store()
        for key in _objects_unreferenced(keys):
            store.delete(key)

    transaction.on_commit(collect)


def source_delete(*, actor: User, source: DataSource) -> None:
    """Delete a source and its snapshots, unless a split uses one of them."""
    from django_celery_beat.models import PeriodicTask

    with transaction.atomic():
        source = DataSource.objects.select_for_update().get(pk=source.pk)
        used = sorted(
            Snapshot.objects.filter(source=source, splits__isnull=False)
            .values_list("version", flat=True)
            .distinct()
        )
        if used:
            raise SourceInUse(
                f"Versions {', '.join(map(str, used))} of {source.name} are used by splits; "
                "delete those first."
            )
        keys = set(source.snapshots.values_list("storage_key", flat=True))
        PeriodicTask.objects.filter(name=source.periodic_task_name).delete()
        audit_record(
            action="datasource.deleted",
            actor=actor,
            project=source.project,
            obj=source,
            payload={"name": source.name, "kind": source.kind, "snapshots": len(keys)},
        )
        source.delete()
        _delete_objects_later(keys)


def source_test_request(*, actor: User, source: DataSource) -> DataSource:
    """Queue a connection test; it runs in a worker."""
    if source.kind == SourceKind.UPLOAD:
        raise ValidationError({"kind": "Upload sources have nothing to connect to."})
    with transaction.atomic():
        claimed = (
            DataSource.objects.filter(pk=source.pk)
            .exclude(test_status__in=[ConnectionStatus.PENDING, ConnectionStatus.RUNNING])
            .update(test_status=ConnectionStatus.PENDING, test_message="", **lease_waiting())
        )
        if claimed:
            audit_record(
                action="datasource.test_requested",
                actor=actor,
                project=source.project,
                obj=source,
            )
            _queue(tasks.source_test, source_id=source.pk)
    source.refresh_from_db()
    return source


def source_test_execute(*, source_id: int) -> None:
    """Try to reach the source and record what happened (the task claimed it)."""
    source = DataSource.objects.get(pk=source_id)
    secrets = secrets_decrypt(source.secrets_encrypted)
    try:
        message = connectors.TESTERS[source.kind](source.config, secrets)
        status = ConnectionStatus.OK
    except Exception as exc:  # any failure is the test's answer
        message = _scrub_message(str(exc) or type(exc).__name__, secrets)
        status = ConnectionStatus.FAILED
    DataSource.objects.filter(pk=source_id).update(
        test_status=status, test_message=message[:500], tested_at=timezone.now()
    )


# --- Ingestion -------------------------------------------------------------------


def _csv_settings(source: DataSource) -> dict[str, str]:
    """The source's CSV choices as the readers take them ("auto" or a value)."""
    delimiter = source.config.get("delimiter") or AUTO
    return {
        "delimiter": DELIMITER_SETTINGS.get(delimiter, AUTO),
        "encoding": source.config.get("encoding") or AUTO,
    }


def _staged_dialect(source: DataSource, store: ObjectStore, key: str) -> Dialect:
    """How to read a staged CSV: PostgreSQL's COPY writes comma-separated
    UTF-8; other sources as set on the source, else detected."""
    if source.kind == SourceKind.POSTGRES:
        return Dialect(detected=False)
    with store.open(key) as stream:
        head = stream.read(DETECT_BYTES + 1)
    return csv_dialect(
        head[:DETECT_BYTES], complete=len(head) <= DETECT_BYTES, **_csv_settings(source)
    )


def _latest_snapshot(source: DataSource) -> Snapshot | None:
    return source.snapshots.order_by("-version").first()


def snapshot_upload(*, actor: User, source: DataSource, upload: UploadedFile) -> Ingestion:
    """Take an uploaded CSV or Parquet file: check it, store it by hash in one
    pass, and queue its parsing. Bad files are refused before anything is kept."""
    if source.kind != SourceKind.UPLOAD:
        raise ValidationError({"file": "Only upload sources take files; pull this source."})
    name = (upload.name or "").replace("\\", "/").rsplit("/", 1)[-1][:255]
    data_format = format_for_name(name, source.config.get("format", ""))
    if not data_format:
        raise ValidationError({"file": "Upload a .csv or .parquet file."})
    limit = settings.DATA_UPLOAD_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise TooLarge(limit)
    sniff(upload.file, data_format, **_csv_settings(source))  # type: ignore[arg-type]
    store = default_store()
    staged = _reupload_of_latest(source, upload, store)
    if staged is None:
        upload.file.seek(0)  # type: ignore[union-attr]
        staged = store.stage(upload.file, max_bytes=limit)  # type: ignore[arg-type]
    try:
        with transaction.atomic():
            DataSource.objects.select_for_update().filter(pk=source.pk).first()
            latest = _latest_snapshot(source)
            unchanged = latest is not None and latest.sha256 == staged.sha256
            ingestion = Ingestion.objects.create(
                source=source,
                trigger=Trigger.UPLOAD,
                status=IngestionStatus.UNCHANGED if unchanged else IngestionStatus.PENDING,
                data_format=data_format,
                original_name=name,
                staging_key="" if unchanged else staged.key,
                sha256=staged.sha256,
                size=staged.size,
                bytes_total=staged.size,
                snapshot=latest if unchanged else None,
                created_by=actor,
                finished_at=timezone.now() if unchanged else None,
                **({} if unchanged else lease_waiting()),
            )
            audit_record(
                action="ingestion.unchanged" if unchanged else "ingestion.queued",
                actor=actor,
                project=source.project,
                obj=ingestion,
                payload={
                    "source": source.name,
                    "file": name,
                    "sha256": staged.sha256,
                    "size": staged.size,
                },
            )
            if not unchanged:
                _queue(tasks.ingestion_run, ingestion_id=ingestion.pk)
    except BaseException:
        if staged.key:
            store.discard(staged.key)
        raise
    if unchanged and staged.key:
        store.discard(staged.key)
    return ingestion


def _reupload_of_latest(
    source: DataSource, upload: UploadedFile, store: ObjectStore
) -> Staged | None:
    """When the upload is as big as the latest version, hash it first: a
    re-upload of the same content is then recognised without writing a byte."""
    latest = _latest_snapshot(source)
    if latest is None or latest.size != upload.size or not store.exists(latest.storage_key):
        return None
    upload.file.seek(0)  # type: ignore[union-attr]
    digest = hashlib.sha256()
    for chunk in file_chunks(upload.file):  # type: ignore[arg-type]
        digest.update(chunk)
    if digest.hexdigest() != latest.sha256:
        return None
    return Staged(key="", sha256=latest.sha256, size=latest.size)


def source_pull_request(
    *, actor: User | None, source: DataSource, trigger: str = Trigger.MANUAL
) -> Ingestion:
    """Queue a pull of the source, unless one is already queued or running."""
    if source.kind == SourceKind.UPLOAD:
        raise ValidationError({"kind": "Upload sources take files; upload a new version."})
    with transaction.atomic():
        DataSource.objects.select_for_update().filter(pk=source.pk).first()
        # Work whose lease ran out is sent again (or failed) now rather than at
        # the next recovery beat: what this returns is live, never stuck.
        lease_recover(INGESTIONS, within=source.ingestions.all())
        running = source.ingestions.filter(
            status__in=[IngestionStatus.PENDING, IngestionStatus.RUNNING]
        ).first()
        if running is not None:
            return running
        ingestion = Ingestion.objects.create(
            source=source, trigger=trigger, created_by=actor, **lease_waiting()
        )
        audit_record(
            action="ingestion.queued",
            actor=actor,
            project=source.project,
            obj=ingestion,
            payload={"source": source.name, "trigger": trigger},
        )
        _queue(tasks.ingestion_run, ingestion_id=ingestion.pk)
    return ingestion


def _progress_writer(ingestion_id: int) -> Callable[[int, int], None]:
    last = [0.0]

    def write(rows: int, done_bytes: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            Ingestion.objects.filter(pk=ingestion_id).update(
                rows_processed=rows, bytes_processed=done_bytes
            )

    return write


def _pull_format(source: DataSource) -> str:
    if source.kind == SourceKind.POSTGRES:
        return "csv"
    name = source.config.get("path") or source.config.get("url", "").split("?", 1)[0]
    return format_for_name(name, source.config.get("format") or "csv")


def ingestion_execute(*, ingestion_id: int) -> None:
    """Pull (or take the staged upload), parse, validate and store one
    ingestion; the task has claimed it. Raises TransientSourceError when a
    retry may help; records any other failure on the ingestion."""
    ingestion = Ingestion.objects.select_related("source__project", "created_by").get(
        pk=ingestion_id
    )
    source = ingestion.source
    store = default_store()
    secrets: dict[str, str] = {}
    staged: Staged | None = None
    try:
        if source.kind == SourceKind.UPLOAD:
            staged = Staged(
                key=ingestion.staging_key, sha256=ingestion.sha256, size=ingestion.size or 0
            )
            data_format = ingestion.data_format
        else:
            secrets = secrets_decrypt(source.secrets_encrypted)
            data_format = _pull_format(source)
            progress = _progress_writer(ingestion_id)
            staged = store.stage(
                connectors.PULLERS[source.kind](source.config, secrets),
                progress=lambda n: progress(0, n),
            )
            Ingestion.objects.filter(pk=ingestion_id).update(
                data_format=data_format,
                staging_key=staged.key,
                sha256=staged.sha256,
                size=staged.size,
                bytes_total=staged.size,
                bytes_processed=0,
            )
        latest = _latest_snapshot(source)
        if latest is not None and latest.sha256 == staged.sha256:
            store.discard(staged.key)
            with transaction.atomic():
                Ingestion.objects.filter(pk=ingestion_id).update(
                    status=IngestionStatus.UNCHANGED,
                    error="",
                    snapshot=latest,
                    staging_key="",
                    rows_processed=latest.rows,
                    bytes_processed=staged.size,
                    finished_at=timezone.now(),
                )
                audit_record(
                    action="ingestion.unchanged",
                    actor=ingestion.created_by,
                    project=source.project,
                    obj=ingestion,
                    payload={
                        "source": source.name,
                        "sha256": staged.sha256,
                        "version": latest.version,
                    },
                )
            return
        dialect = _staged_dialect(source, store, staged.key) if data_format == "csv" else None
        with store.open(staged.key) as stream:
            table = read_table(
                stream,
                data_format,
                total_bytes=staged.size,
                progress=_progress_writer(ingestion_id),
                dialect=dialect,
            )
        if table.num_columns == 0 or table.num_rows == 0:
            raise ValidationError("The data has no rows.")
        results = [evaluate(rule, table) for rule in source.rules.all()]
        _snapshot_create(ingestion, staged, data_format, table, results, store, dialect)
    except (
        connectors.SourceError,
        EgressRefused,
        TooLarge,
        ValidationError,
        pa.ArrowException,
        UnicodeDecodeError,
        KeyError,
        ssl.SSLError,  # a certificate problem does not go away by retrying
    ) as exc:
        text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        ingestion_mark_failed(
            ingestion_id=ingestion_id, error=_scrub_message(text or type(exc).__name__, secrets)
        )
    except (OSError, ConnectionError, TimeoutError) as exc:
        if staged is not None and source.kind != SourceKind.UPLOAD:
            store.discard(staged.key)
        raise TransientSourceError(
            _scrub_message(str(exc) or type(exc).__name__, secrets)
        ) from None
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):
            raise TransientSourceError(_scrub_message(str(exc), secrets)) from None
        raise


def _snapshot_create(
    ingestion: Ingestion,
    staged: Staged,
    data_format: str,
    table: pa.Table,
    results: list[dict[str, Any]],
    store: ObjectStore,
    dialect: Dialect | None = None,
) -> Snapshot:
    source = ingestion.source
    key, new = store.commit(staged)
    try:
        with transaction.atomic():
            DataSource.objects.select_for_update().filter(pk=source.pk).first()
            version = (source.snapshots.aggregate(m=Max("version"))["m"] or 0) + 1
            failed = [r for r in results if not r["passed"]]
            snapshot = Snapshot.objects.create(
                source=source,
                version=version,
                sha256=staged.sha256,
                size=staged.size,
                data_format=data_format,
                rows=table.num_rows,
                columns=table_columns(table),
                storage_key=key,
                original_name=ingestion.original_name,
                csv_delimiter=dialect.delimiter if dialect else "",
                csv_encoding=dialect.encoding if dialect else "",
                csv_detected=dialect.detected if dialect else False,
                validation_status=ValidationStatus.INVALID if failed else ValidationStatus.VALID,
                validation_results=results,
                created_by=ingestion.created_by,
            )
            charter = _charter_for(source.project)
            Profile.objects.create(
                snapshot=snapshot,
                target=charter.target_variable if charter else "",
                **lease_waiting(),
            )
            Ingestion.objects.filter(pk=ingestion.pk).update(
                status=IngestionStatus.SUCCEEDED,
                error="",
                snapshot=snapshot,
                staging_key="",
                rows_processed=table.num_rows,
                bytes_processed=staged.size,
                finished_at=timezone.now(),
            )
            audit_record(
                action="snapshot.created",
                actor=ingestion.created_by,
                project=source.project,
                obj=snapshot,
                payload={
                    "source": source.name,
                    "version": version,
                    "sha256": staged.sha256,
                    "rows": table.num_rows,
                    "size": staged.size,
                    "csv": dialect.describe() if dialect else None,
                    "validation": snapshot.validation_status,
                    "failed_rules": [r["rule_id"] for r in failed],
                },
            )
            _queue(tasks.profile_run, snapshot_id=snapshot.pk)
    except BaseException:
        if new and not Snapshot.objects.filter(sha256=staged.sha256).exists():
            store.delete(key)
        raise
    return snapshot


def ingestion_mark_failed(*, ingestion_id: int, error: str) -> None:
    """Record why an ingestion failed, and drop its staged data."""
    with transaction.atomic():
        ingestion = (
            Ingestion.objects.select_for_update()
            .select_related("source__project")
            .get(pk=ingestion_id)
        )
        if ingestion.is_done:
            return
        staging_key = ingestion.staging_key
        ingestion.status = IngestionStatus.FAILED
        ingestion.error = error[:2000]
        ingestion.staging_key = ""
        ingestion.finished_at = timezone.now()
        ingestion.save(update_fields=["status", "error", "staging_key", "finished_at"])
        audit_record(
            action="ingestion.failed",
            actor=ingestion.created_by,
            project=ingestion.source.project,
            obj=ingestion,
            payload={"source": ingestion.source.name, "error": error[:300]},
        )
    if staging_key:
        default_store().discard(staging_key)


def ingestion_release(*, ingestion_id: int, delay: float = 0.0, reason: str = "") -> None:
    """Put a running ingestion back in the queue before a retry in ``delay``
    seconds; its lease covers the wait. ``reason`` (why this attempt failed)
    is shown while it waits."""
    Ingestion.objects.filter(pk=ingestion_id, status=IngestionStatus.RUNNING).update(
        status=IngestionStatus.PENDING, error=reason[:2000], **lease_waiting(delay=delay)
    )


def snapshot_delete(*, actor: User, snapshot: Snapshot) -> None:
    """Delete one version, unless a split (or a model) uses it."""
    with transaction.atomic():
        snapshot = (
            Snapshot.objects.select_for_update()
            .select_related("source__project")
            .get(pk=snapshot.pk)
        )
        splits = list(snapshot.splits.values_list("number", flat=True))
        if splits:
            raise SourceInUse(
                f"Version {snapshot.version} is used by split"
                f"{'s' if len(splits) > 1 else ''} {', '.join(map(str, sorted(splits)))}; "
                "it cannot be deleted."
            )
        audit_record(
            action="snapshot.deleted",
            actor=actor,
            project=snapshot.source.project,
            obj=snapshot,
            payload={
                "source": snapshot.source.name,
                "version": snapshot.version,
                "sha256": snapshot.sha256,
            },
        )
        key = snapshot.storage_key
        snapshot.delete()
        _delete_objects_later({key})


# --- Profiles ----------------------------------------------------------------------


def _read_snapshot(snapshot: Snapshot, store: ObjectStore | None = None) -> pa.Table:
    store = store or default_store()
    with store.open(snapshot.storage_key) as stream:
        return read_table(stream, snapshot.data_format, dialect=snapshot.csv_dialect)


def profile_execute(*, snapshot_id: int) -> None:
    """Compute and store the snapshot's profile (the task has claimed it)."""
    profile = Profile.objects.select_related("snapshot").get(snapshot_id=snapshot_id)
    table = _read_snapshot(profile.snapshot)
    if table.num_rows > settings.DATA_PROFILE_MAX_ROWS:
        table = table.slice(0, settings.DATA_PROFILE_MAX_ROWS)
    data = profile_table(table, target=profile.target)
    Profile.objects.filter(pk=profile.pk).update(
        status=ProfileStatus.READY, data=data, error="", computed_at=timezone.now()
    )


def profile_release(*, snapshot_id: int, delay: float = 0.0) -> None:
    """Put a running profile back in the queue before a retry."""
    Profile.objects.filter(snapshot_id=snapshot_id, status=ProfileStatus.RUNNING).update(
        status=ProfileStatus.PENDING, **lease_waiting(delay=delay)
    )


def profile_mark_failed(*, snapshot_id: int, error: str) -> None:
    Profile.objects.filter(snapshot_id=snapshot_id).exclude(status=ProfileStatus.READY).update(
        status=ProfileStatus.FAILED, error=error[:2000], computed_at=timezone.now()
    )


# --- Validation rules ----------------------------------------------------------------


def rule_create(
    *,
    actor: User,
    source: DataSource,
    kind: str,
    column: str = "",
    params: dict[str, Any] | None = None,
) -> ValidationRule:
    """Add a rule that every new snapshot of the source must pass."""
    params = params or {}
    if kind not in RuleKind.values:
        raise ValidationError({"kind": f"Unknown rule {kind!r}."})
    latest = _latest_snapshot(source)
    columns = [c["name"] for c in latest.columns] if latest is not None else None
    errors = rule_errors(kind, column, params, columns=columns)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        rule = ValidationRule.objects.create(source=source, kind=kind, column=column, params=params)
        audit_record(
            action="validation_rule.created",
            actor=actor,
            project=source.project,
            obj=rule,
            payload={"source": source.name, "kind": kind, "column": column, "params": params},
        )
    return rule


def snapshot_validate_request(*, actor: User, snapshot: Snapshot) -> None:
    """Queue a check of an existing version against the source's current rules."""
    with transaction.atomic():
        audit_record(
            action="snapshot.validation_requested",
            actor=actor,
            project=snapshot.source.project,
            obj=snapshot,
            payload={"source": snapshot.source.name, "version": snapshot.version},
        )
        transaction.on_commit(
            lambda: tasks.snapshot_validate.delay(
                snapshot_id=snapshot.pk, actor_id=actor.pk if actor else None
            )
        )


def snapshot_validate_execute(*, snapshot_id: int, actor_id: int | None = None) -> Snapshot:
    """Check a version against the source's current rules and record the result
    (its status and each rule's outcome), audited."""
    snapshot = Snapshot.objects.select_related("source__project").get(pk=snapshot_id)
    source = snapshot.source
    rules = list(source.rules.all())
    table = _read_snapshot(snapshot)
    results = [evaluate(rule, table) for rule in rules]
    failed = [r for r in results if not r["passed"]]
    status = ValidationStatus.INVALID if failed else ValidationStatus.VALID
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    with transaction.atomic():
        locked = Snapshot.objects.select_for_update().get(pk=snapshot.pk)
        before = locked.validation_status
        locked.validation_status = status
        locked.validation_results = results
        locked.save(update_fields=["validation_status", "validation_results"])
        audit_record(
            action="snapshot.validated",
            actor=actor,
            project=source.project,
            obj=locked,
            payload={
                "source": source.name,
                "version": locked.version,
                "rules": len(rules),
                "before": before,
                "validation": status,
                "failed_rules": [r["rule_id"] for r in failed],
            },
        )
    return locked


def rule_delete(*, actor: User, rule: ValidationRule) -> None:
    with transaction.atomic():
        audit_record(
            action="validation_rule.deleted",
            actor=actor,
            project=rule.source.project,
            obj=rule,
            payload={"source": rule.source.name, "kind": rule.kind, "column": rule.column},
        )
        rule.delete()


# --- Splits ---------------------------------------------------------------------------


def split_create(
    *,
    actor: User,
    snapshot: Snapshot,
    test_fraction: float,
    seed: int,
    stratify_column: str | None = None,
    group_column: str = "",
) -> Split:
    """Queue a train/test split of a valid snapshot.

    Without a stratify column (``None``) a classification charter's target is
    used; a group column keeps each key's rows on one side (not stratified,
    unless a stratify column is given too: then a stratified group split).
    """
    if not snapshot.is_valid:
        raise ValidationError(
            {"snapshot": f"Version {snapshot.version} failed validation; it cannot be split."}
        )
    if not 0 < test_fraction < 1:
        raise ValidationError({"test_fraction": "Give a fraction between 0 and 1."})
    names = {c["name"] for c in snapshot.columns}
    errors = {
        field: f"No column {value!r} in version {snapshot.version}."
        for field, value in (("stratify_column", stratify_column), ("group_column", group_column))
        if value and value not in names
    }
    if errors:
        raise ValidationError(errors)
    if group_column and stratify_column == group_column:
        raise ValidationError(
            {"stratify_column": "Stratify by another column than the one that keeps groups."}
        )
    if group_column and stratify_column is None:
        stratify_column = ""  # asked for groups only: not stratified
    elif stratify_column is None:
        charter = _charter_for(snapshot.source.project)
        stratify_column = ""
        if (
            charter
            and charter.question_type == "classification"
            and charter.target_variable in names
        ):
            stratify_column = charter.target_variable
    with transaction.atomic():
        Snapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
        number = (Split.objects.filter(parent=snapshot).aggregate(m=Max("number"))["m"] or 0) + 1
        split = Split.objects.create(
            parent=snapshot,
            number=number,
            test_fraction=test_fraction,
            seed=seed,
            stratify_column=stratify_column,
            group_column=group_column,
            created_by=actor,
            **lease_waiting(),
        )
        audit_record(
            action="split.created",
            actor=actor,
            project=snapshot.source.project,
            obj=split,
            payload={
                "source": snapshot.source.name,
                "version": snapshot.version,
                "number": number,
                "test_fraction": test_fraction,
                "seed": seed,
                "stratify_column": stratify_column,
                "group_column": group_column,
            },
        )
        _queue(tasks.split_run, split_id=split.pk)
    return split


def split_execute(*, split_id: int) -> None:
    """Compute the split and store train and test by hash (the task claimed it)."""
    split = Split.objects.select_related("parent__source__project").get(pk=split_id)
    store = default_store()
    table = _read_snapshot(split.parent, store)
    train_idx, test_idx = split_indices(
        table,
        test_fraction=split.test_fraction,
        seed=split.seed,
        stratify_column=split.stratify_column,
        group_column=split.group_column,
    )
    train, _ = store.put_bytes(table_bytes(table.take(train_idx)))
    test, _ = store.put_bytes(table_bytes(table.take(test_idx)))
    with transaction.atomic():
        Split.objects.filter(pk=split_id).update(
            status=SplitStatus.READY,
            train_sha256=train.sha256,
            train_rows=len(train_idx),
            train_size=train.size,
            test_sha256=test.sha256,
            test_rows=len(test_idx),
            test_size=test.size,
            finished_at=timezone.now(),
        )
        audit_record(
            action="split.ready",
            actor=split.created_by,
            project=split.parent.source.project,
            obj=split,
            payload={"train_sha256": train.sha256, "test_sha256": test.sha256},
        )


def split_release(*, split_id: int, delay: float = 0.0) -> None:
    """Put a running split back in the queue before a retry."""
    Split.objects.filter(pk=split_id, status=SplitStatus.RUNNING).update(
        status=SplitStatus.PENDING, **lease_waiting(delay=delay)
    )


def split_mark_failed(*, split_id: int, error: str) -> None:
    Split.objects.filter(pk=split_id).exclude(status=SplitStatus.READY).filter(
        ~Q(status=SplitStatus.FAILED)
    ).update(status=SplitStatus.FAILED, error=error[:2000], finished_at=timezone.now())


# --- Lost work ---------------------------------------------------------------------------


def source_test_mark_failed(*, source_id: int, error: str) -> None:
    DataSource.objects.filter(
        pk=source_id, test_status__in=[ConnectionStatus.PENDING, ConnectionStatus.RUNNING]
    ).update(
        test_status=ConnectionStatus.FAILED, test_message=error[:500], tested_at=timezone.now()
    )


def staging_orphans_remove(*, older_than_seconds: float | None = None) -> list[str]:
    """Remove staged objects that no unfinished ingestion names and that
    nobody has written to for a while: what a worker killed mid-pull (or a
    web process killed mid-upload) left behind. Returns their keys."""
    if older_than_seconds is None:
        older_than_seconds = settings.DATA_STAGING_ORPHAN_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    store = default_store()
    old = {key for key, modified in store.staging_objects() if modified < cutoff}
    if not old:
        return []
    named = set(
        Ingestion.objects.filter(staging_key__in=old)
        .exclude(
            status__in=[
                IngestionStatus.SUCCEEDED,
                IngestionStatus.UNCHANGED,
                IngestionStatus.FAILED,
            ]
        )
        .values_list("staging_key", flat=True)
    )
    removed = sorted(old - named)
    for key in removed:
        store.discard(key)
    if removed:
        logger.warning("removed %d orphaned staging object(s)", len(removed))
    return removed


# What the recovery beat (background.leases) knows of the data stage's work;
# registered in DatasetsConfig.ready().
INGESTIONS = LeasedWork(
    name="ingestion",
    model=Ingestion,
    active=lambda: Ingestion.objects.filter(
        status__in=[IngestionStatus.PENDING, IngestionStatus.RUNNING]
    ),
    requeue={"status": IngestionStatus.PENDING},
    redispatch=lambda row: tasks.ingestion_run.delay(ingestion_id=row.pk),
    fail=lambda row, error: ingestion_mark_failed(ingestion_id=row.pk, error=error),
    cleanup=staging_orphans_remove,
)
PROFILES = LeasedWork(
    name="profile",
    model=Profile,
    active=lambda: Profile.objects.filter(
        status__in=[ProfileStatus.PENDING, ProfileStatus.RUNNING]
    ),
    requeue={"status": ProfileStatus.PENDING},
    redispatch=lambda row: tasks.profile_run.delay(snapshot_id=row.snapshot_id),
    fail=lambda row, error: profile_mark_failed(snapshot_id=row.snapshot_id, error=error),
)
SPLITS = LeasedWork(
    name="split",
    model=Split,
    active=lambda: Split.objects.filter(status__in=[SplitStatus.PENDING, SplitStatus.RUNNING]),
    requeue={"status": SplitStatus.PENDING},
    redispatch=lambda row: tasks.split_run.delay(split_id=row.pk),
    fail=lambda row, error: split_mark_failed(split_id=row.pk, error=error),
)
SOURCE_TESTS = LeasedWork(
    name="source_test",
    model=DataSource,
    active=lambda: DataSource.objects.filter(
        test_status__in=[ConnectionStatus.PENDING, ConnectionStatus.RUNNING]
    ),
    requeue={"test_status": ConnectionStatus.PENDING},
    redispatch=lambda row: tasks.source_test.delay(source_id=row.pk),
    fail=lambda row, error: source_test_mark_failed(source_id=row.pk, error=error),
    max_attempts=2,
)
LEASED_WORK = (INGESTIONS, PROFILES, SPLITS, SOURCE_TESTS)


# --- Keys ---------------------------------------------------------------------------------


def secrets_rotate_all() -> int:
    """Re-encrypt every source's secrets with the first key; return how many."""
    from datasets.crypto import secrets_rotate

    count = 0
    with transaction.atomic():
        for source in DataSource.objects.select_for_update().exclude(secrets_encrypted=""):
            source.secrets_encrypted = secrets_rotate(source.secrets_encrypted)
            source.save(update_fields=["secrets_encrypted"])
            count += 1
        if count:
            audit_record(action="datasource.keys_rotated", payload={"sources": count})
    return count
