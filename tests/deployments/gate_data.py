"""The gate's cast and models: a validator in the cast's project, registered
versions, and validation reports stored through ``validation_record`` from
a job's result (the shape ``validate.py`` writes)."""

from __future__ import annotations

from typing import Any

from deployments import gate
from deployments.gate_models import ValidationReport
from experiments.models import ModelVersion, RegisteredModel
from experiments.services import model_version_create, registered_model_create
from tests.factories import MembershipFactory, UserFactory


def validator(project: Any, username: str = "vera") -> Any:
    user = UserFactory(username=username)
    MembershipFactory(project=project, user=user, role="validator")
    return user


def version(project: Any, actor: Any, name: str = "churn", run: Any = None) -> ModelVersion:
    model = RegisteredModel.objects.filter(project=project, name=name).first()
    if model is None:
        model = registered_model_create(actor=actor, project=project, name=name)
    if run is not None:
        return model_version_create(actor=actor, model=model, source=f"runs:/{run.uuid}/model")
    return model_version_create(
        actor=actor, model=model, source=f"mlflow-artifacts:/1/{name}/artifacts/model"
    )


def result(value: float, *, champion: float | None = None, ok: bool = True) -> dict[str, Any]:
    return {
        "value": value,
        "champion_value": champion,
        "rows": 60,
        "model_sha256": "a" * 64,
        "segments": [
            {
                "column": "plan",
                "rows": [
                    {"value": "basic", "rows": 20, "value_metric": value + 0.02},
                    {"value": "plus", "rows": 20, "value_metric": value},
                    {"value": "pro", "rows": 20, "value_metric": value - 0.03},
                ],
                "gap": 0.05,
            }
        ],
        "integration": {
            "ok": ok,
            "signature_matches": ok,
            "within_budget": True,
            "answered": True,
            "latency_ms_p50": 3.1,
            "latency_ms_p95": 4.2,
            "budget_ms": 200.0,
            "load_seconds": 0.8,
            "signature_inputs": ["tenure", "charges", "plan"],
            "expected_inputs": ["charges", "plan", "tenure"],
        },
    }


def report(
    project: Any,
    version: ModelVersion,
    actor: Any,
    value: float,
    split: Any = None,
    **kwargs: Any,
) -> ValidationReport:
    """A report of ``version`` as the validation job would leave it (on
    ``split``, when given, with its digests)."""
    row = ValidationReport.objects.create(
        split=split,
        project=project,
        version=version,
        requested_by=actor,
        segment_columns=["plan"],
        charter_version=1,
        question="Which customers will leave next month?",
        metric="roc_auc",
        threshold=0.8,
        direction="higher",
        snapshot_digest=split.parent.sha256 if split else "b" * 64,
        train_digest=split.train_sha256 if split else "c" * 64,
        test_digest=split.test_sha256 if split else "d" * 64,
        code_digest="e" * 64,
        approach="Classification with gradient boosting.",
        champion=gate.champion_of(version),
    )
    return gate.validation_record(report_id=row.pk, result=result(value, **kwargs))
