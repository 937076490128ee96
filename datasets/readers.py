"""Reading CSV and Parquet into Arrow tables, in batches, with progress."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError

SNIFF_BYTES = 4 * 1024 * 1024
FORMATS = ("csv", "parquet")

# The choices a source offers for its CSV files; "auto" detects from the data.
DELIMITERS = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with byte order mark",
    "cp1252": "Windows-1252 (Western European)",
    "latin-1": "Latin-1 (ISO 8859-1)",
}
AUTO = "auto"
# How a delimiter is written in a source's settings (a tab as "tab").
DELIMITER_SETTINGS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
# Bytes and lines looked at to tell the delimiter and the encoding.
DETECT_BYTES = 256 * 1024
DETECT_LINES = 200


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is read, and whether that was detected or chosen."""

    delimiter: str = ","
    encoding: str = "utf-8"
    detected: bool = True

    def describe(self) -> str:
        how = "detected" if self.detected else "as set on the source"
        return f"{DELIMITERS.get(self.delimiter, self.delimiter)}, {ENCODINGS.get(self.encoding, self.encoding)} ({how})"


def detect_encoding(head: bytes, *, complete: bool) -> str:
    """UTF-8 (with or without a byte order mark) when the bytes decode as
    UTF-8; else Windows-1252, or Latin-1 for the five bytes cp1252 leaves
    undefined. Every byte string decodes as Latin-1, so this always answers;
    it cannot tell Latin-1 from other single-byte encodings."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def detect_delimiter(text: str) -> str:
    """The candidate that splits the first lines into the same number (> 1) of
    fields most consistently, quotes respected; a comma when none does."""
    lines = text.splitlines()[:DETECT_LINES]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut off mid-row
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        if not widths or widths[0] < 2:
            continue
        agreeing = sum(1 for w in widths if w == widths[0]) / len(widths)
        score = (agreeing, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def csv_dialect(
    head: bytes, *, complete: bool, delimiter: str = AUTO, encoding: str = AUTO
) -> Dialect:
    """The dialect to read a CSV with: the source's choices, else detected
    from its first bytes."""
    chosen = delimiter != AUTO and encoding != AUTO
    if encoding == AUTO:
        encoding = detect_encoding(head, complete=complete)
    if delimiter == AUTO:
        sample = head[:DETECT_BYTES]
        text = sample.decode("utf-8" if encoding == "utf-8-sig" else encoding, errors="replace")
        delimiter = detect_delimiter(text.lstrip("\ufeff"))
    return Dialect(delimiter=delimiter, encoding=encoding, detected=not chosen)


def _csv_options(dialect: Dialect | None, **read: Any) -> dict[str, Any]:
    dialect = dialect or Dialect()
    # pyarrow skips a UTF-8 byte order mark itself.
    encoding = "utf8" if dialect.encoding in ("utf-8", "utf-8-sig") else dialect.encoding
    return {
        "read_options": pacsv.ReadOptions(encoding=encoding, **read),
        "parse_options": pacsv.ParseOptions(delimiter=dialect.delimiter),
    }


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


def sniff(
    stream: IO[bytes], data_format: str, *, delimiter: str = AUTO, encoding: str = AUTO
) -> Dialect | None:
    """Refuse content that is empty, undecodable or not parseable, from its
    start; return the CSV dialect it is read with (None for Parquet).

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
        return None
    complete = len(head) <= SNIFF_BYTES
    sample = head[:SNIFF_BYTES]
    if b"\x00" in sample:
        raise ValidationError(
            {
                "file": "The file contains NUL bytes: it is binary, or UTF-16 text, "
                "which is not read; save it as UTF-8."
            }
        )
    dialect = csv_dialect(sample, complete=complete, delimiter=delimiter, encoding=encoding)
    if dialect.encoding in ("utf-8", "utf-8-sig"):
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
        except UnicodeDecodeError as exc:
            raise ValidationError(
                {
                    "file": "The file is not UTF-8 text (invalid byte at position "
                    f"{exc.start}); choose its encoding on the source, or leave it on auto."
                }
            ) from exc
    if not complete:
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    try:
        table = pacsv.read_csv(io.BytesIO(sample), **_csv_options(dialect))
    except pa.ArrowException as exc:
        raise ValidationError({"file": f"Malformed CSV: {exc}"}) from exc
    if table.num_columns == 0:
        raise ValidationError({"file": "The CSV file has no header."})
    duplicated = duplicate_names(table.column_names)
    if duplicated:
        raise ValidationError({"file": f"Malformed CSV: repeated column names {duplicated}."})
    if complete and table.num_rows == 0:
        raise ValidationError({"file": "The CSV file has a header but no rows."})
    return dialect


def duplicate_names(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]


def read_table(
    stream: IO[bytes],
    data_format: str,
    *,
    total_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    dialect: Dialect | None = None,
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
    reader = pacsv.open_csv(counting, **_csv_options(dialect, block_size=settings.DATA_BATCH_BYTES))
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
