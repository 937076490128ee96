"""Access, bad input and search through the HTTP API served by a real server."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from experiments import services
from experiments.models import Experiment, Param, Run
from tests.experiments.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


class Api:
    def __init__(self, base: str, user: Any) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token_for(user)}"}

    def call(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        url = f"{self.base}/api/2.0/mlflow/{endpoint}"
        return requests.request(method, url, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def experiment(project: Any, bob: Any) -> Experiment:
    return services.experiment_create(actor=bob, project=project, name="exp")


@pytest.fixture
def run(experiment: Experiment, bob: Any) -> Run:
    return services.run_create(actor=bob, experiment=experiment, run_name="r")


def test_outsider_gets_resource_does_not_exist(
    tracking_uri: str, charlie: Any, experiment: Experiment, run: Run
) -> None:
    api = Api(tracking_uri, charlie)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "experiments/get", {"params": {"experiment_id": experiment.pk}}),
        ("GET", "runs/get", {"params": {"run_id": run.uuid}}),
        ("POST", "runs/log-batch", {"json": {"run_id": run.uuid, "params": []}}),
        ("POST", "experiments/create", {"json": {"name": "x"}}),
        ("GET", "no/such/endpoint", {}),
    ]
    for method, endpoint, kwargs in calls:
        response = api.call(method, endpoint, **kwargs)
        assert response.status_code == 404, endpoint
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", endpoint
    listing = requests.get(
        f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts",
        headers=api.headers,
        params={"path": ""},
        timeout=30,
    )
    assert listing.status_code == 404
    assert Experiment.objects.filter(name="x").count() == 0


def test_analyst_reads_and_may_not_write(tracking_uri: str, carol: Any, run: Run) -> None:
    api = Api(tracking_uri, carol)
    assert api.call("GET", "runs/get", params={"run_id": run.uuid}).status_code == 200
    for endpoint, body in [
        ("runs/log-parameter", {"run_id": run.uuid, "key": "k", "value": "v"}),
        ("runs/delete", {"run_id": run.uuid}),
        ("experiments/create", {"name": "nope"}),
        ("registered-models/create", {"name": "m"}),
    ]:
        response = api.call("POST", endpoint, json=body)
        assert response.status_code == 403, endpoint
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    put = requests.put(
        f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/1/x.txt",
        headers=api.headers,
        data=b"x",
        timeout=30,
    )
    assert put.status_code == 403
    assert not Param.objects.exists()


def test_no_or_bad_token_is_unauthenticated(tracking_uri: str, run: Run) -> None:
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}]:
        response = requests.get(
            f"{tracking_uri}/api/2.0/mlflow/runs/get",
            params={"run_id": run.uuid},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("endpoint", "body", "code"),
    [
        ("runs/log-batch", "{not json", "BAD_REQUEST"),
        ("runs/log-batch", "[1, 2]", "BAD_REQUEST"),
        ("runs/log-batch", {"run_id": 5}, "INVALID_PARAMETER_VALUE"),
        ("runs/log-batch", {"run_id": "RUN", "metrics": "many"}, "INVALID_PARAMETER_VALUE"),
        (
            "runs/log-batch",
            {"run_id": "RUN", "metrics": [{"key": "m", "value": "high", "timestamp": 1}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "metrics": [{"key": "m", "value": 1, "timestamp": "soon"}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "params": [{"key": "p", "value": "v" * 6001}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "params": [{"key": "../../etc", "value": "v"}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "tags": [{"key": "k" * 251, "value": "v"}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/log-batch",
            {"run_id": "RUN", "tags": [{"key": "big", "value": "v" * 1_100_000}]},
            "INVALID_PARAMETER_VALUE",
        ),
        ("runs/log-metric", {"run_id": "RUN", "key": "m"}, "INVALID_PARAMETER_VALUE"),
        ("runs/log-metric", {"run_id": "RUN", "key": "m", "value": [1]}, "INVALID_PARAMETER_VALUE"),
        ("runs/get-nothing", {}, "ENDPOINT_NOT_FOUND"),
        ("runs/update", {"run_id": "RUN", "status": "DANCING"}, "INVALID_PARAMETER_VALUE"),
        ("runs/search", {"experiment_ids": ["1"], "max_results": 0}, "INVALID_PARAMETER_VALUE"),
        ("runs/search", {"experiment_ids": ["1"], "page_token": "!!"}, "INVALID_PARAMETER_VALUE"),
        ("runs/search", {"experiment_ids": [1.5]}, "INVALID_PARAMETER_VALUE"),
        ("runs/search", {"experiment_ids": ["1"], "filter": "x ="}, "INVALID_PARAMETER_VALUE"),
        ("runs/get", {"run_id": "0" * 32}, "RESOURCE_DOES_NOT_EXIST"),
        ("experiments/delete", {"experiment_id": "9" * 30}, "RESOURCE_DOES_NOT_EXIST"),
        ("runs/search", {"experiment_ids": ["9" * 30]}, "INVALID_PARAMETER_VALUE"),
        (
            "runs/log-batch",
            {"run_id": "RUN", "params": [{"key": "p", "value": "nul\x00here"}]},
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "runs/search",
            {"experiment_ids": ["1"], "filter": "params.p = 'a\x00'"},
            "INVALID_PARAMETER_VALUE",
        ),
        ("experiments/create", {"name": ""}, "INVALID_PARAMETER_VALUE"),
        (
            "experiments/create",
            {"name": "e", "artifact_location": "file:///etc"},
            "INVALID_PARAMETER_VALUE",
        ),
        ("experiments/create", {"name": "exp"}, "RESOURCE_ALREADY_EXISTS"),
        (
            "model-versions/create",
            {"name": "absent", "source": "file:///etc"},
            "RESOURCE_DOES_NOT_EXIST",
        ),
    ],
)
def test_bad_input_is_an_mlflow_shaped_4xx(
    tracking_uri: str, bob: Any, run: Run, endpoint: str, body: Any, code: str
) -> None:
    api = Api(tracking_uri, bob)
    if isinstance(body, dict):
        data = json.dumps(body).replace('"RUN"', json.dumps(run.uuid))
    else:
        data = body
    method = "GET" if endpoint == "runs/get" else "POST"
    if method == "GET":
        response = api.call(method, endpoint, params=body)
    else:
        response = api.call(
            method, endpoint, data=data, headers={**api.headers, "Content-Type": "application/json"}
        )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error_code"] == code, response.text
    assert "message" in response.json()
    assert not Param.objects.exists()
    assert run.tags.filter(key__startswith="t").count() == 0


def test_changing_a_param_is_refused_and_keeps_the_first(
    tracking_uri: str, bob: Any, run: Run
) -> None:
    api = Api(tracking_uri, bob)
    first = {"run_id": run.uuid, "key": "lr", "value": "0.1"}
    assert api.call("POST", "runs/log-parameter", json=first).status_code == 200
    response = api.call("POST", "runs/log-parameter", json={**first, "value": "0.2"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert Param.objects.get(run=run, key="lr").value == "0.1"


def _raw(method: str, url: str, path: str, headers: dict[str, str], body: bytes = b"") -> Any:
    """Send the path exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "localhost", parts.port, timeout=30)
    conn.request(method, parts.path + path, body=body or None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


@pytest.mark.parametrize(
    "path",
    [
        "/../../../outside.txt",
        "/1/../../outside.txt",
        "/%2e%2e/%2e%2e/outside.txt",
        "/1/%2E%2E/%2E%2E/outside.txt",
        "/%252e%252e/outside.txt",
        "/1/..%2f..%2foutside.txt",
        "//etc/outside.txt",
        "/1\\..\\..\\outside.txt",
        "/C:/outside.txt",
        "/1/%00x.txt",
    ],
)
def test_artifact_traversal_is_refused(
    tracking_uri: str, bob: Any, storage: Path, path: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(bob)}"}
    base = f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts"
    status, data = _raw("PUT", base, path, headers, b"owned")
    assert status in (400, 404), data
    if data.startswith(b"{"):
        assert json.loads(data)["error_code"] in ("INVALID_PARAMETER_VALUE", "ENDPOINT_NOT_FOUND")
    written = [p for p in storage.parent.rglob("*") if p.is_file() and p.read_bytes() == b"owned"]
    assert written == []
    status, _ = _raw("GET", base, path, headers)
    assert status in (400, 404)


def test_artifact_symlink_out_of_the_root_is_refused(
    tracking_uri: str, bob: Any, project: Any, storage: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = storage / "mlflow-artifacts" / str(project.pk)
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    headers = {"Authorization": f"Bearer {token_for(bob)}"}
    base = f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts"
    status, data = _raw("GET", base, "/link/secret.txt", headers)
    assert status == 400 and json.loads(data)["error_code"] == "INVALID_PARAMETER_VALUE"
    status, _ = _raw("PUT", base, "/link/new.txt", headers, b"x")
    assert status == 400
    assert not (outside / "new.txt").exists()
    listing = requests.get(base, headers=headers, params={"path": "link"}, timeout=30)
    assert listing.status_code == 400


def test_search_runs_with_or_order_and_pages(as_user: Any, bob: Any) -> None:
    client = as_user(bob)
    experiment_id = client.create_experiment("search")
    for i in range(7):
        run = client.create_run(experiment_id, run_name=f"r{i}", start_time=1000 + i)
        client.log_param(run.info.run_id, "algo", "gbm" if i % 2 else "lin")
        client.log_metric(run.info.run_id, "acc", i / 10)
    found = client.search_runs(
        [experiment_id],
        "(params.algo = 'gbm' AND metrics.acc > 0.4) OR attributes.run_name = 'r0'",
        order_by=["metrics.acc DESC"],
    )
    assert [r.info.run_name for r in found] == ["r5", "r0"]
    pages, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["metrics.acc ASC"], max_results=3, page_token=token
        )
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    assert pages == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]


def test_search_queries_do_not_grow_with_runs(
    project: Any, bob: Any, experiment: Experiment, django_assert_max_num_queries: Any
) -> None:
    client = Client(headers={"Authorization": f"Bearer {token_for(bob)}"})
    url = "/mlflow/churn/api/2.0/mlflow/runs/search"
    body = json.dumps({"experiment_ids": [str(experiment.pk)], "order_by": ["metrics.m DESC"]})

    def add_runs(n: int) -> None:
        for i in range(n):
            run = services.run_create(actor=bob, experiment=experiment)
            services.run_log_batch(
                actor=bob,
                run=run,
                metrics=[services.MetricPoint("m", float(i), 1, 0)],
                params={"p": str(i)},
                tags={"t": "x"},
            )

    add_runs(2)
    with django_assert_max_num_queries(12) as few:
        assert len(client.post(url, body, content_type="application/json").json()["runs"]) == 2
    add_runs(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.post(url, body, content_type="application/json").json()["runs"]) == 32
