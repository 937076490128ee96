"""The data stage in words: rules as sentences, statuses as words, validation
results that say what failed and on how many rows. Plain functions, used by
the templates through ``datasets_words`` and tested on their own."""

from __future__ import annotations

from typing import Any

TYPE_WORDS = {
    "integer": "whole numbers",
    "float": "numbers",
    "string": "text",
    "boolean": "true/false values",
    "datetime": "dates and times",
}


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def rule_sentence(kind: str, column: str, params: dict[str, Any] | None) -> str:
    """A validation rule as a sentence: "age between 18 and 90"."""
    params = params or {}
    if kind == "min_rows":
        return f"at least {_rows(int(params.get('min') or 0))}"
    if kind == "required":
        return f"{column} is present"
    if kind == "not_null":
        return f"{column} is never empty"
    if kind == "unique":
        return f"{column} has no duplicates"
    if kind == "type":
        wanted = params.get("type", "")
        return f"{column} holds {TYPE_WORDS.get(wanted, wanted)}"
    if kind == "range":
        low, high = params.get("min"), params.get("max")
        if low is not None and high is not None:
            return f"{column} between {_number(low)} and {_number(high)}"
        if low is not None:
            return f"{column} at least {_number(low)}"
        if high is not None:
            return f"{column} at most {_number(high)}"
        return f"{column} within its range"
    if kind == "allowed":
        values = [str(v) for v in params.get("values") or []]
        if not values:
            return f"{column} holds only allowed values"
        if len(values) == 1:
            return f"{column} is always {values[0]}"
        return f"{column} is one of {', '.join(values[:-1])} or {values[-1]}"
    return f"{kind} {column}".strip()


def result_sentence(result: dict[str, Any], rows: int) -> str:
    """One validation result: passed, or what failed and on how many of the rows."""
    if result.get("passed"):
        return "Passed"
    failing = int(result.get("failing") or 0)
    kind = result.get("kind")
    message = str(result.get("message") or "")
    if message.startswith("column ") and message.endswith(" is missing"):
        return f"Failed: the column {result.get('column')} is missing"
    if kind == "min_rows":
        return f"Failed: only {_rows(rows)}"
    if kind == "type":
        actual = message.split(",", 1)[0]
        return f"Failed: the column holds {TYPE_WORDS.get(actual, actual)}"
    if kind == "range" and message == "not a numeric column":
        return "Failed: the column is not numeric"
    what = {
        "not_null": "empty",
        "range": "out of range",
        "allowed": "with a value not allowed",
        "unique": "duplicated",
    }.get(str(kind), "failing")
    return f"Failed on {failing:,} of {_rows(rows)} ({what})"


# What each status value means, in words; failures add their reason.
STATUS_WORDS = {
    "pending": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "unchanged": "Succeeded, unchanged",
    "ready": "Succeeded",
    "ok": "Succeeded: connected",
    "never": "Not tested yet",
    "failed": "Failed",
    "valid": "Valid",
    "invalid": "Invalid: a rule failed",
}


def status_words(status: str, reason: str = "") -> str:
    """A status in words: "Succeeded", "Failed: <reason>"."""
    words = STATUS_WORDS.get(status, status.replace("_", " ").capitalize())
    if status == "failed":
        reason = " ".join(reason.split())
        return f"Failed: {reason}" if reason else "Failed"
    return words
