"""The profile of a snapshot and the validation of new snapshots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from charter.models import CharterVersion
from datasets import services
from datasets.models import ProfileStatus
from datasets.profiling import profile_table


def test_profile_per_column_and_dataset(
    project: Any, upload_source: Any, ingest: Any, api_for: Any, alice: Any
) -> None:
    CharterVersion.objects.create(
        project=project,
        number=2,  # v1 is the fixture's signed-off charter
        status="approved",
        question_type="classification",
        target_variable="churned",
    )
    data = (
        b"age,plan,fee,churned\n"
        b"20,basic,10,no\n30,plus,20,no\n40,pro,30,yes\n,basic,40,yes\n"
        b"20,basic,10,no\n35,plus,1000,no\n45,pro,35,yes\n25,basic,15,no\n"
    )
    ingest(upload_source, data=data)

    response = api_for(alice).get(
        f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/profile/"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == ProfileStatus.READY
    profile = body["profile"]
    assert profile["rows"] == 8
    assert profile["duplicated_rows"] == 1
    assert profile["target"] == "churned"
    columns = {c["name"]: c for c in profile["columns"]}
    age = columns["age"]
    assert (age["type"], age["missing"], age["count"], age["distinct"]) == ("integer", 1, 7, 6)
    assert age["missing_pct"] == 12.5
    assert (age["min"], age["max"]) == (20, 45)
    assert columns["fee"]["outliers"] == 1
    assert columns["plan"]["top"][0] == ["basic", 4]
    assert sum(columns["fee"]["histogram"]["counts"]) == 8
    # Older customers churn: age correlates positively with the target.
    assert profile["target_correlations"]["age"] > 0.5
    assert profile["correlation_matrix"]["columns"] == ["age", "fee"]


def test_profile_of_a_multiclass_target_uses_the_correlation_ratio() -> None:
    rng = np.random.default_rng(0)
    label = np.array(["a", "b", "c"])[rng.integers(0, 3, 3000)]
    signal = (label == "c") * 5.0 + rng.normal(size=3000)
    table = pa.table({"label": label, "signal": signal, "noise": rng.normal(size=3000)})
    profile = profile_table(table, target="label")
    assert profile["target_correlations"]["signal"] > 0.8
    assert profile["target_correlations"]["noise"] < 0.1


def test_failing_rules_mark_the_snapshot_invalid_with_counts(
    upload_source: Any, ingest: Any, alice: Any, api_for: Any
) -> None:
    rules: list[tuple[str, str, dict[str, Any]]] = [
        ("required", "customer_id", {}),
        ("required", "region", {}),
        ("type", "age", {"type": "integer"}),
        ("not_null", "plan", {}),
        ("range", "age", {"min": 21, "max": 68}),
        ("allowed", "plan", {"values": ["basic", "plus"]}),
        ("unique", "customer_id", {}),
        ("unique", "plan", {}),
        ("min_rows", "", {"min": 500}),
    ]
    for kind, column, params in rules:
        services.rule_create(
            actor=alice, source=upload_source, kind=kind, column=column, params=params
        )
    snapshot = ingest(upload_source).snapshot
    assert snapshot.validation_status == "invalid"
    results = {
        (r["kind"], r["column"]): (r["passed"], r["failing"]) for r in snapshot.validation_results
    }
    assert results == {
        ("required", "customer_id"): (True, 0),
        ("required", "region"): (False, 200),
        ("type", "age"): (True, 0),
        ("not_null", "plan"): (True, 0),
        ("range", "age"): (False, 8),
        ("allowed", "plan"): (False, 67),
        ("unique", "customer_id"): (True, 0),
        ("unique", "plan"): (False, 197),
        ("min_rows", ""): (False, 1),
    }
    body = api_for(alice).get(f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/").json()
    assert body["validation_status"] == "invalid"


def test_bad_rules_are_refused(upload_source: Any, api_for: Any, alice: Any) -> None:
    url = f"/api/projects/churn/sources/{upload_source.pk}/rules/"
    api = api_for(alice)
    assert (
        api.post(url, {"kind": "range", "column": "age", "params": {}}, format="json").status_code
        == 400
    )
    assert (
        api.post(
            url, {"kind": "type", "column": "age", "params": {"type": "money"}}, format="json"
        ).status_code
        == 400
    )
    assert api.post(url, {"kind": "not_null"}, format="json").status_code == 400
    assert (
        api.post(url, {"kind": "min_rows", "params": {"min": "ten"}}, format="json").status_code
        == 400
    )
    created = api.post(url, {"kind": "not_null", "column": "age"}, format="json")
    assert created.status_code == 201
    assert api.delete(f"{url}{created.json()['id']}/").status_code == 204
    assert api.get(url).json() == []
