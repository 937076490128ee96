"""Rules read as sentences, statuses as words, validation results say what
failed and on how many rows: the functions, and the pages that use them."""

from __future__ import annotations

import io
from typing import Any

import pytest

from datasets import services
from datasets.readers import read_table
from datasets.rules import evaluate
from datasets.wording import result_sentence, rule_sentence, status_words
from tests.datasets.conftest import CSV


@pytest.mark.parametrize(
    ("kind", "column", "params", "sentence"),
    [
        ("range", "age", {"min": 18, "max": 90}, "age between 18 and 90"),
        ("range", "age", {"min": 18.0, "max": 90.5}, "age between 18 and 90.5"),
        ("range", "age", {"min": 18, "max": None}, "age at least 18"),
        ("range", "age", {"max": 90}, "age at most 90"),
        ("range", "age", {}, "age within its range"),
        ("min_rows", "", {"min": 100}, "at least 100 rows"),
        ("min_rows", "", {"min": 1}, "at least 1 row"),
        ("min_rows", "", {"min": 10000}, "at least 10,000 rows"),
        ("not_null", "email", {}, "email is never empty"),
        ("required", "email", {}, "email is present"),
        ("unique", "customer_id", {}, "customer_id has no duplicates"),
        ("type", "age", {"type": "integer"}, "age holds whole numbers"),
        ("type", "signup", {"type": "datetime"}, "signup holds dates and times"),
        (
            "allowed",
            "plan",
            {"values": ["basic", "plus", "pro"]},
            "plan is one of basic, plus or pro",
        ),
        ("allowed", "plan", {"values": ["basic"]}, "plan is always basic"),
    ],
)
def test_rules_read_as_sentences(kind: str, column: str, params: Any, sentence: str) -> None:
    assert rule_sentence(kind, column, params) == sentence


@pytest.mark.parametrize(
    ("status", "reason", "words"),
    [
        ("succeeded", "", "Succeeded"),
        ("ready", "", "Succeeded"),
        ("unchanged", "", "Succeeded, unchanged"),
        ("ok", "", "Succeeded: connected"),
        ("pending", "", "Queued"),
        ("running", "", "Running"),
        ("never", "", "Not tested yet"),
        ("failed", "connection refused\n by 10.0.0.5", "Failed: connection refused by 10.0.0.5"),
        ("failed", "", "Failed"),
        ("invalid", "", "Invalid: a rule failed"),
        ("pending_approval", "", "Pending approval"),
    ],
)
def test_statuses_read_as_words(status: str, reason: str, words: str) -> None:
    assert status_words(status, reason) == words


class Rule:
    def __init__(self, kind: str, column: str = "", params: Any = None) -> None:
        self.pk, self.kind, self.column, self.params = 1, kind, column, params or {}


@pytest.mark.parametrize(
    ("rule", "outcome"),
    [
        (Rule("range", "age", {"min": 30, "max": 60}), "Failed on 76 of 200 rows (out of range)"),
        (Rule("range", "age", {"min": 0, "max": 100}), "Passed"),
        (
            Rule("allowed", "plan", {"values": ["basic", "plus"]}),
            "Failed on 67 of 200 rows (with a value not allowed)",
        ),
        (Rule("unique", "plan"), "Failed on 197 of 200 rows (duplicated)"),
        (Rule("min_rows", "", {"min": 500}), "Failed: only 200 rows"),
        (Rule("not_null", "email"), "Failed: the column email is missing"),
        (Rule("type", "plan", {"type": "integer"}), "Failed: the column holds text"),
        (Rule("range", "plan", {"min": 1}), "Failed: the column is not numeric"),
    ],
)
def test_validation_results_say_what_failed_on_how_many_rows(rule: Rule, outcome: str) -> None:
    table = read_table(io.BytesIO(CSV), "csv")
    assert result_sentence(evaluate(rule, table), table.num_rows) == outcome


def test_the_pages_show_rules_and_results_in_words(
    upload_source: Any, ingest: Any, alice: Any, client_for: Any
) -> None:
    services.rule_create(
        actor=alice, source=upload_source, kind="range", column="age", params={"min": 30, "max": 60}
    )
    services.rule_create(
        actor=alice, source=upload_source, kind="not_null", column="plan", params={}
    )
    ingestion = ingest(upload_source)
    client = client_for(alice)
    detail = client.get(f"/projects/churn/data/{upload_source.pk}/").content.decode()
    assert "age between 30 and 60" in detail
    assert "plan is never empty" in detail
    assert "{&#x27;min&#x27;" not in detail  # no raw parameters
    assert "Invalid: a rule failed" in detail
    assert "Succeeded" in detail  # the upload, in the history
    version = client.get(
        f"/projects/churn/data/{upload_source.pk}/v{ingestion.snapshot.version}/"
    ).content.decode()
    assert "age between 30 and 60" in version
    assert "Failed on 76 of 200 rows (out of range)" in version
    assert "plan is never empty" in version
    assert ">Passed<" in version
