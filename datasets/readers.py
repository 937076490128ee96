"""Reading CSV and Parquet into Arrow tables, in batches, with progress."""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError

SNIFF_BYTES = 4 * 1024 * 1024
FORMATS = ("csv", "parquet")


class CountingReader(io.RawIOBase):
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def format_for_name(name: str, default: str = "") -> str:
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".txt")):
        return "csv"
    return default


def sniff(stream: IO[bytes], data_format: str) -> None:
    """Refuse content that is empty, not UTF-8 or not parseable, from its start.

    Files up to SNIFF_BYTES are parsed whole; bigger ones are checked on
    their first SNIFF_BYTES and fully parsed by the worker.
    """
    stream.seek(0)
    head = stream.read(SNIFF_BYTES + 1)
    stream.seek(0)
    if not head:
        raise ValidationError({"file": "The file is empty."})
    if data_format == "parquet":
        try:
            parquet = pq.ParquetFile(stream)
            if parquet.metadata.num_columns == 0:
                raise ValidationError({"file": "The Parquet file has no columns."})
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError({"file": f"Not a readable Parquet file: {exc}"}) from exc
        finally:
            stream.seek(0)
        return
    complete = len(head) <= SNIFF_BYTES
    sample = head[:SNIFF_BYTES]
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            {"file": f"The file is not UTF-8 text (invalid byte at position {exc.start})."}
        ) from exc
    if not complete:
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    try:
        table = pacsv.read_csv(io.BytesIO(sample))
    except pa.ArrowException as exc:
        raise ValidationError({"file": f"Malformed CSV: {exc}"}) from exc
    if table.num_columns == 0:
        raise ValidationError({"file": "The CSV file has no header."})
    duplicated = duplicate_names(table.column_names)
    if duplicated:
        raise ValidationError({"file": f"Malformed CSV: repeated column names {duplicated}."})
    if complete and table.num_rows == 0:
        raise ValidationError({"file": "The CSV file has a header but no rows."})


def duplicate_names(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]


def read_table(
    stream: IO[bytes],
    data_format: str,
    *,
    total_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Read the whole table in batches, reporting (rows, bytes) read so far."""
    counting = CountingReader(stream)
    batches: list[pa.RecordBatch] = []
    rows = 0
    if data_format == "parquet":
        parquet = pq.ParquetFile(stream)
        schema = parquet.schema_arrow
        for batch in parquet.iter_batches(batch_size=256_000):
            batches.append(batch)
            rows += batch.num_rows
            if progress is not None:
                done = int((total_bytes or 0) * rows / max(parquet.metadata.num_rows, 1))
                progress(rows, done)
        return pa.Table.from_batches(batches, schema=schema)
    reader = pacsv.open_csv(
        counting, read_options=pacsv.ReadOptions(block_size=settings.DATA_BATCH_BYTES)
    )
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if progress is not None:
            progress(rows, counting.count)
    duplicated = duplicate_names(reader.schema.names)
    if duplicated:
        raise ValidationError(f"Repeated column names {duplicated}.")
    return pa.Table.from_batches(batches, schema=reader.schema)


def type_name(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    if pa.types.is_null(arrow_type):
        return "null"
    return "string"


def table_columns(table: pa.Table) -> list[dict[str, str]]:
    return [
        {"name": field.name, "type": type_name(field.type), "arrow_type": str(field.type)}
        for field in table.schema
    ]
