"""What the profile says about blanks, flags and dates."""

from __future__ import annotations

import io
from datetime import datetime

import pyarrow as pa
import pyarrow.csv as pacsv

from datasets.profiling import BLANK_LABEL, profile_table
from datasets.selectors import profile_figures


def _columns(table: pa.Table) -> dict[str, dict]:
    return {c["name"]: c for c in profile_table(table)["columns"]}


def test_blank_strings_are_missing_and_reported_apart_from_nulls() -> None:
    table = pa.table({"plan": ["basic", "", "  ", None, "pro", "basic"]})
    plan = _columns(table)["plan"]
    assert (plan["nulls"], plan["blank"], plan["missing"]) == (1, 2, 3)
    assert plan["count"] == 3
    assert plan["missing_pct"] == 50.0
    assert plan["distinct"] == 2  # blanks are not a value
    assert dict(map(tuple, plan["top"])) == {"basic": 2, "pro": 1, BLANK_LABEL: 2}


def test_blank_cells_read_from_csv_are_counted() -> None:
    data = b"id,city\n1,Paris\n2,\n3,Lyon\n4,\n"
    city = _columns(pacsv.read_csv(io.BytesIO(data)))["city"]
    assert (city["blank"], city["missing"], city["count"]) == (2, 2, 2)
    assert [BLANK_LABEL, 2] in city["top"]


def test_a_zero_one_column_is_categorical_without_outliers() -> None:
    flags = [0] * 95 + [1] * 5
    churned = _columns(pa.table({"churned": flags, "n": list(range(100))}))
    flag = churned["churned"]
    assert flag["categorical"] is True
    assert "outliers" not in flag and "histogram" not in flag
    assert dict(map(tuple, flag["top"])) == {"0": 95, "1": 5}
    assert flag["mean"] == 0.05
    assert churned["n"]["categorical"] is False
    assert churned["n"]["outliers"] == 0


def test_a_boolean_column_is_categorical() -> None:
    flag = _columns(pa.table({"active": [True, False, True, None]}))["active"]
    assert flag["categorical"] is True
    assert "outliers" not in flag
    assert dict(map(tuple, flag["top"])) == {"true": 2, "false": 1}
    assert flag["missing"] == 1


def test_datetimes_are_a_histogram_over_time() -> None:
    stamps = [datetime(2024, 1, 1 + i % 28, 12) for i in range(60)] + [None]
    profile = profile_table(pa.table({"signed_up": pa.array(stamps, pa.timestamp("s"))}))
    signed_up = profile["columns"][0]
    assert "top" not in signed_up
    assert signed_up["min"] == "2024-01-01T12:00:00"
    assert signed_up["max"] == "2024-01-28T12:00:00"
    assert sum(signed_up["time_histogram"]["counts"]) == 60
    assert (
        len(signed_up["time_histogram"]["edges"]) == len(signed_up["time_histogram"]["counts"]) + 1
    )
    (figure,) = profile_figures(profile)
    assert figure["figure"]["layout"]["xaxis"] == {"type": "date"}
    assert figure["figure"]["data"][0]["x"][0] == "2024-01-01T12:00:00"


def test_dates_read_from_csv_are_charted_over_time() -> None:
    data = b"day\n2024-01-01\n2024-02-01\n2024-03-01\n"
    day = _columns(pacsv.read_csv(io.BytesIO(data)))["day"]
    assert day["type"] == "datetime"
    assert (day["min"], day["max"]) == ("2024-01-01T00:00:00", "2024-03-01T00:00:00")
