"""Deployments with sample logs, for the drift tests (rows only: no scoring
process behind them, only their logs)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from django.utils import timezone

from cloud.local import LocalProvider
from compute.models import ComputeSize
from deployments import serving
from deployments.serving_models import Deployment, DeploymentState, Endpoint
from experiments import jobs
from tests.deployments import gate_data
from tests.experiments import jobs_data


def log_lines(rows: int, seed: int, *, shift: bool) -> bytes:
    """Sampled requests as the scoring process writes them."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows) if not shift else rng.integers(1, 12, rows)
    charges = rng.normal(70, 20, rows).round(2) + (30 if shift else 0)
    plan = rng.choice(["basic", "plus", "pro"], rows) if not shift else np.full(rows, "pro")
    lines = [
        json.dumps(
            {
                "ts": 1.0,
                "deployment": "blue",
                "input": {"tenure": int(t), "charges": float(c), "plan": str(p)},
                "prediction": "yes" if shift else str(rng.choice(["yes", "no"])),
            }
        )
        for t, c, p in zip(tenure, charges, plan, strict=True)
    ]
    return "".join(line + "\n" for line in lines).encode()


def sample_log(endpoint: Endpoint, name: str) -> Path:
    provider = serving.serving_provider(endpoint.provider)
    assert isinstance(provider, LocalProvider)
    path = provider._dep_dir(endpoint.provider_name, name) / "logs" / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def deployed(
    *, project: Any, alice: Any, bob: Any, callbacks: Any
) -> dict[tuple[str, str], Deployment]:
    """Blue and green of endpoint ``churn`` running the same version, trained
    by a job of ``bob``'s, and a stopped one of endpoint ``old``."""
    size, _ = ComputeSize.objects.get_or_create(
        provider="local",
        name="Standard_DS1_v2",
        defaults={
            "vcpus": 1,
            "memory_gb": 2,
            "hourly_price": "0.10",
            "price_date": timezone.now().date(),
        },
    )
    split = jobs_data.ready_split(project=project, actor=alice, callbacks=callbacks)
    job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
    version = gate_data.version(project, bob, run=job.run)
    out = {}
    for endpoint_name, names in (("churn", ("blue", "green")), ("old", ("blue",))):
        endpoint = Endpoint.objects.create(
            project=project,
            registered_model=version.registered_model,
            name=endpoint_name,
            provider="local",
            provider_name=f"drift-{endpoint_name}-{secrets.token_hex(3)}",
            key_sha256="0" * 64,
            traffic={"blue": 100} if endpoint_name == "churn" else {},
        )
        for name in names:
            out[(endpoint_name, name)] = Deployment.objects.create(
                endpoint=endpoint,
                name=name,
                model_version=version,
                size=size,
                state=DeploymentState.RUNNING
                if endpoint_name == "churn"
                else DeploymentState.STOPPED,
            )
    return out
