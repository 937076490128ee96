"""The reporting database that batch predictions land in.

A PostgreSQL source of the project (its host, database and user, and its
encrypted password) when the scoring names one; otherwise an embedded SQLite
file, ``$STAGEGATE_VAR_DIR/reporting/<project-slug>.sqlite3``. One table per
``output_table``, made on first use, one row per scored row:

    scoring_id, model_name, model_version, snapshot_sha256, row_number,
    prediction (a number), prediction_label (a label), scored_at

``rows_replace`` is the idempotent write: in one transaction it deletes the
rows of the scoring and inserts the new ones, so a re-run (or a write done
again after a lost worker) replaces its rows and never doubles them.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
COLUMNS = (
    "scoring_id",
    "model_name",
    "model_version",
    "snapshot_sha256",
    "row_number",
    "prediction",
    "prediction_label",
    "scored_at",
)
CONNECT_TIMEOUT = 10
STATEMENT_TIMEOUT_MS = 600_000


class ReportingError(Exception):
    """The reporting database refused the write (or could not be reached)."""


def table_problem(name: str) -> str:
    """Why ``name`` cannot be an output table, or blank."""
    if not IDENTIFIER_RE.match(name or ""):
        return (
            "1 to 63 lower-case letters, digits and underscores, not starting with a digit "
            "(e.g. churn_scores)."
        )
    if name.startswith(("pg_", "sqlite_")):
        return "Names starting with pg_ or sqlite_ are the database's own."
    return ""


def sqlite_path(project_slug: str) -> Path:
    return Path(settings.VAR_DIR) / "reporting" / f"{project_slug}.sqlite3"


@dataclass(frozen=True)
class Labelled:
    """What every row of one scoring carries."""

    scoring_id: int
    model_name: str
    model_version: int
    snapshot_sha256: str
    scored_at: datetime


def _rows(meta: Labelled, numbers: list[Any], labels: list[Any]) -> Iterator[tuple[Any, ...]]:
    for i, (number, label) in enumerate(zip(numbers, labels, strict=True)):
        if number is not None and isinstance(number, float) and not math.isfinite(number):
            number = None
        yield (
            meta.scoring_id,
            meta.model_name,
            meta.model_version,
            meta.snapshot_sha256,
            i,
            number,
            label,
            meta.scored_at,
        )


def _sqlite_replace(path: Path, table: str, meta: Labelled, rows: Iterator[tuple[Any, ...]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    quoted = f'"{table}"'  # checked by table_problem: letters, digits, underscores
    try:
        with closing(sqlite3.connect(path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            with db:  # one transaction: delete and insert, or nothing
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {quoted} (scoring_id INTEGER NOT NULL, "
                    "model_name TEXT NOT NULL, model_version INTEGER NOT NULL, "
                    "snapshot_sha256 TEXT NOT NULL, row_number INTEGER NOT NULL, "
                    "prediction REAL, prediction_label TEXT, scored_at TEXT NOT NULL, "
                    "PRIMARY KEY (scoring_id, row_number))"
                )
                delete = f"DELETE FROM {quoted} WHERE scoring_id = ?"  # noqa: S608 (checked name)
                db.execute(delete, (meta.scoring_id,))
                insert = (
                    f"INSERT INTO {quoted} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 8)})"  # noqa: S608
                )
                cursor = db.executemany(
                    insert,
                    ((*r[:7], r[7].isoformat()) for r in rows),
                )
                return int(cursor.rowcount)
    except sqlite3.Error as exc:
        raise ReportingError(f"The reporting file refused the rows: {exc}") from exc


def postgres_connect(config: dict[str, Any], secrets: dict[str, str]) -> Any:
    """A writable connection to a PostgreSQL source's database (through the
    same egress check as a pull)."""
    import psycopg

    from datasets.egress import EgressRefused, egress_check

    host = str(config.get("host") or "")
    port = int(config.get("port") or 5432)
    try:
        address = egress_check(host, port)
    except EgressRefused as exc:
        raise ReportingError(str(exc)) from exc
    try:
        return psycopg.connect(
            host=host,
            hostaddr=address,
            port=port,
            dbname=config.get("database", ""),
            user=config.get("user", ""),
            password=secrets.get("password") or None,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="stagegate-reporting",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
    except psycopg.OperationalError as exc:
        if "FATAL:" in str(exc):
            raise ReportingError(f"The reporting database refused the connection: {exc}") from exc
        raise ReportingError(f"Could not connect to {host}:{port}.") from None


def _postgres_replace(
    config: dict[str, Any],
    secrets: dict[str, str],
    table: str,
    meta: Labelled,
    rows: Iterator[tuple[Any, ...]],
) -> int:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(table)
    try:
        with closing(postgres_connect(config, secrets)) as db, db.transaction():
            db.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (scoring_id bigint NOT NULL, "
                    "model_name text NOT NULL, model_version integer NOT NULL, "
                    "snapshot_sha256 char(64) NOT NULL, row_number bigint NOT NULL, "
                    "prediction double precision, prediction_label text, "
                    "scored_at timestamptz NOT NULL, PRIMARY KEY (scoring_id, row_number))"
                ).format(name)
            )
            db.execute(
                sql.SQL("DELETE FROM {} WHERE scoring_id = %s").format(name), (meta.scoring_id,)
            )
            count = 0
            with (
                db.cursor() as cursor,
                cursor.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN").format(
                        name, sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
                    )
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)
                    count += 1
            return count
    except psycopg.Error as exc:
        message = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc)
        raise ReportingError(f"The reporting database refused the rows: {message}") from exc


def rows_replace(
    *,
    project_slug: str,
    table: str,
    meta: Labelled,
    numbers: list[Any],
    labels: list[Any],
    postgres: tuple[dict[str, Any], dict[str, str]] | None = None,
) -> int:
    """Replace the rows of ``meta.scoring_id`` in ``table`` with these
    predictions (one transaction); the number of rows written."""
    problem = table_problem(table)
    if problem:
        raise ReportingError(f"Output table: {problem}")
    rows = _rows(meta, numbers, labels)
    if postgres is not None:
        config, secrets = postgres
        return _postgres_replace(config, secrets, table, meta, rows)
    return _sqlite_replace(sqlite_path(project_slug), table, meta, rows)
