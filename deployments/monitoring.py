"""Drift checks of running deployments: the log's window against the split the
version was trained on (docs/serving.md, Drift)."""

from __future__ import annotations

import dataclasses
import io
from functools import lru_cache

import pyarrow.parquet as pq
from django.conf import settings

from charter.selectors import charter_signed_off
from cloud.base import ProviderError
from datasets.storage import default_store, object_key
from deployments import drift, serving
from deployments.drift_models import DriftReport
from deployments.gate import version_split
from deployments.serving_models import Deployment, DeploymentState


@lru_cache(maxsize=4)
def _reference(train_sha256: str, target: str) -> drift.Reference:
    """The profile of a training part (by hash, so it never goes stale)."""
    with default_store().open(object_key(train_sha256)) as f:
        frame = pq.read_table(io.BytesIO(f.read())).to_pandas()
    return drift.reference_profile(frame, target=target if target in frame.columns else None)


def drift_check(*, deployment_id: int) -> DriftReport | None:
    """Compare the window of a running deployment's sample log with its
    version's training split and keep the report; None when the deployment
    is not running, its version names no split, or its provider keeps no
    log."""
    deployment = (
        Deployment.objects.select_related("endpoint__project", "model_version__registered_model")
        .filter(pk=deployment_id, state=DeploymentState.RUNNING)
        .first()
    )
    if deployment is None:
        return None
    split = version_split(deployment.model_version)
    if split is None or not split.train_sha256:
        return None
    provider = serving.serving_provider(deployment.endpoint.provider)
    read_log = getattr(provider, "deployment_sample_log", None)
    if read_log is None:
        return None
    try:
        data = read_log(
            deployment.endpoint.provider_name, deployment.name, settings.DRIFT_WINDOW_BYTES
        )
    except ProviderError:
        return None
    charter = charter_signed_off(project=deployment.endpoint.project)
    target = charter.target_variable if charter is not None else ""
    reference = _reference(split.train_sha256, target)
    inputs, predictions = drift.samples_read(data)
    report = drift.drift_report(reference, inputs, predictions=predictions)
    return DriftReport.objects.create(
        deployment=deployment,
        model_version=deployment.model_version,
        train_sha256=split.train_sha256,
        reference_rows=report.reference_rows,
        current_rows=report.current_rows,
        judged_features=report.judged_features,
        drifted_features=report.drifted_features,
        drifted_share=report.drifted_share,
        drift_share=report.drift_share,
        dataset_drift=report.dataset_drift,
        prediction_status=report.prediction.status if report.prediction else "",
        features=[dataclasses.asdict(f) for f in report.features],
        prediction=dataclasses.asdict(report.prediction) if report.prediction else None,
        note=report.note,
    )
