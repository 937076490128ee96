"""Validation rules evaluated on a table, vectorised with pyarrow."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datasets.readers import type_name

TYPES = ("integer", "float", "string", "boolean", "datetime")
# A row count the database's bigint columns can hold.
MAX_ROWS = 2**63 - 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rule_errors(
    kind: str, column: str, params: dict[str, Any], *, columns: list[str] | None = None
) -> dict[str, str]:
    """What is wrong with a rule's definition, by field. ``columns`` are the
    names in the source's latest version, when it has one."""
    errors: dict[str, str] = {}
    if kind != "min_rows" and not column:
        errors["column"] = "Name the column this rule checks."
    elif kind != "min_rows" and columns is not None and column not in columns:
        shown = ", ".join(columns[:20]) + (", …" if len(columns) > 20 else "")
        errors["column"] = f"No column {column!r} in the latest version (columns: {shown})."
    if kind == "type" and params.get("type") not in TYPES:
        errors["params"] = f"type must be one of {', '.join(TYPES)}."
    if kind == "range":
        low, high = params.get("min"), params.get("max")
        if low is None and high is None:
            errors["params"] = "Give min, max or both."
        elif any(v is not None and not _is_number(v) for v in (low, high)):
            errors["params"] = "min and max must be numbers."
        elif low is not None and high is not None and low > high:
            errors["params"] = f"min ({low}) must not be above max ({high})."
    if kind == "allowed" and (
        not isinstance(params.get("values"), list) or not params.get("values")
    ):
        errors["params"] = "Give the allowed values as a non-empty list."
    if kind == "min_rows":
        wanted = params.get("min")
        if not isinstance(wanted, int) or isinstance(wanted, bool):
            errors["params"] = "min must be a whole number."
        elif not 0 <= wanted <= MAX_ROWS:
            errors["params"] = f"min must be between 0 and {MAX_ROWS}."
    return errors


def _result(rule: Any, passed: bool, failing: int, message: str) -> dict[str, Any]:
    return {
        "rule_id": rule.pk,
        "kind": rule.kind,
        "column": rule.column,
        "passed": passed,
        "failing": failing,
        "message": message,
    }


def evaluate(rule: Any, table: pa.Table) -> dict[str, Any]:
    kind, name, params = rule.kind, rule.column, rule.params or {}
    if kind == "min_rows":
        wanted = int(params.get("min", 0))
        ok = table.num_rows >= wanted
        return _result(rule, ok, 0 if ok else 1, f"{table.num_rows} rows, at least {wanted}")
    if name not in table.column_names:
        return _result(rule, False, table.num_rows, f"column {name!r} is missing")
    column = table.column(name)
    if kind == "required":
        return _result(rule, True, 0, "present")
    if kind == "type":
        actual = type_name(column.type)
        wanted_type = params.get("type")
        ok = actual == wanted_type or (wanted_type == "float" and actual == "integer")
        return _result(rule, ok, 0 if ok else table.num_rows, f"{actual}, expected {wanted_type}")
    if kind == "not_null":
        nulls = column.null_count
        return _result(rule, nulls == 0, nulls, f"{nulls} empty values")
    if kind == "range":
        if type_name(column.type) not in ("integer", "float"):
            return _result(rule, False, table.num_rows, "not a numeric column")
        failing = 0
        if params.get("min") is not None:
            failing += pc.sum(pc.less(column, params["min"])).as_py() or 0
        if params.get("max") is not None:
            failing += pc.sum(pc.greater(column, params["max"])).as_py() or 0
        return _result(rule, failing == 0, failing, f"{failing} values out of range")
    if kind == "allowed":
        values = params.get("values") or []
        as_text = pc.cast(column, pa.string())
        allowed = pa.array([str(v) for v in values], type=pa.string())
        outside = pc.invert(pc.is_in(as_text, value_set=allowed))
        failing = pc.sum(pc.fill_null(outside, False)).as_py() or 0
        return _result(rule, failing == 0, failing, f"{failing} values not allowed")
    if kind == "unique":
        present = table.num_rows - column.null_count
        distinct = pc.count_distinct(column, mode="only_valid").as_py()
        duplicates = present - distinct
        return _result(rule, duplicates == 0, duplicates, f"{duplicates} duplicated values")
    return _result(rule, False, 0, f"unknown rule {kind}")
