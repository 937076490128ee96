"""A test double for Azure at the HTTP layer, under a real ``azure.ai.ml.MLClient``.

``FakeAzureML`` is an azure-core ``HttpTransport``: the SDK builds its real
requests (URLs, api-versions, bodies, headers) and parses what comes back with
its own models. The answers come from JSON fixtures in ``azure_fixtures/``,
shaped like the Azure ML REST API's examples (azure-rest-api-specs,
``specification/machinelearningservices``), and from a small in-memory state:
computes, jobs, the workspace (with its ETag), run logs as blobs.

Every request is recorded (``requests``); ``fail(method, path_regex, status)``
injects an error for the next matching request(s); long-running operations
answer 202 with ``Azure-AsyncOperation`` / ``Location`` headers whose URLs the
test can make succeed or fail (``operations``).
"""

from __future__ import annotations

import copy
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.core.pipeline.transport._requests_basic import (  # the real response adapters
    _handle_non_stream_rest_response,
)
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from azure.core.utils._utils import case_insensitive_dict

FIXTURES = Path(__file__).resolve().parent / "azure_fixtures"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-stagegate"
WORKSPACE = "ws-stagegate"
LOCATION = "westeurope"
ARM = "https://management.azure.com"
WS_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}"
)
API_HOST = f"https://{LOCATION}.api.azureml.ms"
BLOB_HOST = "https://stagegatestore.blob.core.windows.net"
# The default datastore's storage account: Azurite's (the test command's), so
# that what the provider uploads there lands in Azurite.
DATASTORE = "workspaceblobstore"
DATASTORE_ACCOUNT = "devstoreaccount1"
DATASTORE_HOST = f"https://{DATASTORE_ACCOUNT}.blob.core.windows.net"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: Any

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)

    @property
    def api_version(self) -> str:
        return self.query.get("api-version", [""])[0]

    def __repr__(self) -> str:
        return f"{self.method} {self.url}"


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    code: str = ""
    times: int = 1


class FakeAzureML(HttpTransport):  # type: ignore[misc]
    """Azure Resource Manager, the workspace's discovery and run history APIs,
    and blob storage for the run logs, as one in-memory HTTP endpoint."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.computes: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        # online endpoints ("ep") and deployments ("ep/blue"), as ARM answers them
        self.online: dict[str, dict[str, Any]] = {}
        self.workspace: dict[str, Any] = fixture("workspace.json")
        self.workspace_etag = '"0a00b1c2-0000-0d00-0000-000000000001"'
        # operation id -> {"status": ..., "error": {...}}
        self.operations: dict[str, dict[str, Any]] = {}
        # job name -> {log file name: text}
        self.logs: dict[str, dict[str, str]] = {}
        # "name:version" -> an environment version, as ARM answers it
        self.environments: dict[str, dict[str, Any]] = {}
        # "name:version" -> a model version, as ARM answers it
        self.models: dict[str, dict[str, Any]] = {}
        # parent job name -> its child runs, as the run history answers them
        self.children: dict[str, list[dict[str, Any]]] = {}
        # the workspace's default datastore (``use_datastore``), and where its
        # blob requests go: Azurite's blob endpoint
        self.datastore: dict[str, Any] | None = None
        self.datastore_key = ""
        self.blob_forward = ""

    # --- azure-core's transport interface ---------------------------------

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeAzureML:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def sleep(self, duration: float) -> None:
        raise AssertionError(f"the SDK slept {duration} s in the transport (a retry or a poller)")

    def send(self, request: Any, **kwargs: Any) -> Any:
        raw = _raw(request)
        headers = dict(request.headers)
        recorded = Recorded(request.method, request.url, headers, _body(raw))
        self.requests.append(recorded)
        injected = self._fault(recorded)
        if injected is not None:
            status, answered, out_body = injected
        elif self.blob_forward and request.url.startswith(DATASTORE_HOST + "/"):
            status, answered, out_body = self._forward(recorded, raw)
        else:
            status, answered, out_body = self._answer(recorded)
        response = requests.Response()
        response.status_code = status
        response.reason = _REASONS.get(status, "")
        response.url = request.url
        out_headers = case_insensitive_dict(answered)  # Azurite's are lower case
        if out_body is None:
            content = b""
        elif isinstance(out_body, bytes):
            content = out_body
        else:
            content = json.dumps(out_body).encode()
            out_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        out_headers.setdefault("Content-Length", str(len(content)))
        out_headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers = case_insensitive_dict(out_headers)  # type: ignore[assignment]
        response._content = content
        response._content_consumed = True
        response.raw = io.BytesIO(content)
        response.request = requests.Request(request.method, request.url).prepare()
        if hasattr(request, "content"):  # azure.core.rest.HttpRequest
            rest = RestRequestsTransportResponse(
                request=request, internal_response=response, block_size=4096
            )
            if not kwargs.get("stream"):
                _handle_non_stream_rest_response(rest)
            return rest
        return RequestsTransportResponse(request, response, 4096)

    # --- what the test looks at -------------------------------------------

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [
            r for r in self.requests if (method is None or r.method == method) and contains in r.url
        ]

    def summary(self) -> list[str]:
        """``METHOD /path-after-the-workspace`` of every ARM request, in order."""
        out = []
        for r in self.requests:
            path = r.path
            if path.startswith(WS_PATH):
                path = path[len(WS_PATH) :] or "/"
            out.append(f"{r.method} {path}")
        return out

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        code: str = "",
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path`` (a regex on
        the URL path) with ``status``."""
        self.faults.append(Fault(method, re.compile(path), status, headers or {}, code, times))

    def add_compute(
        self, name: str, fixture_name: str = "compute_instance.json", **props: Any
    ) -> dict[str, Any]:
        body = fixture(fixture_name)
        body["name"] = name
        body["id"] = f"{WS_PATH}/computes/{name}"
        body["properties"]["properties"].update(props)
        self.computes[name.lower()] = body
        return body

    def use_datastore(self, container: str, blob_url: str, account_key: str) -> None:
        """Give the workspace a default blob datastore on ``container``, whose
        blob requests are sent on to the Azurite of ``blob_url``."""
        self.datastore = {
            "id": f"{WS_PATH}/datastores/{DATASTORE}",
            "name": DATASTORE,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": DATASTORE_ACCOUNT,
                "containerName": container,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "isDefault": True,
                "credentials": {"credentialsType": "AccountKey"},
                "serviceDataAccessAuthIdentity": "None",
                "description": "",
                "tags": {},
                "properties": {},
            },
        }
        self.datastore_key = account_key
        self.blob_forward = blob_url.rstrip("/")

    def _forward(self, r: Recorded, raw: bytes) -> tuple[int, dict[str, str], Any]:
        """A blob request on the datastore's account, sent on to Azurite as it is:
        same path, query, headers and signature, and the account's own host name
        as ``Host`` (Azurite then reads the account from the host, as Azure does,
        and checks the signature the client made for that URL)."""
        url = urlsplit(r.url)
        forward = urlsplit(self.blob_forward)
        target = f"{forward.scheme}://{forward.netloc}{url.path}" + (
            f"?{url.query}" if url.query else ""
        )
        headers = {k: v for k, v in r.headers.items() if k.lower() != "host"}
        headers["Host"] = url.netloc
        response = requests.request(r.method, target, headers=headers, data=raw, timeout=30)
        dropped = {"transfer-encoding", "connection"}
        if r.method != "HEAD":  # a HEAD's Content-Length is the blob's size
            dropped.add("content-length")
        out = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
        return response.status_code, out, response.content

    def set_state(self, name: str, state: str, **props: Any) -> None:
        inner = self.computes[name.lower()]["properties"]["properties"]
        inner["state"] = state
        inner.update(props)

    def add_job(self, name: str, status: str, **props: Any) -> dict[str, Any]:
        body = fixture("command_job.json")
        body["name"] = name
        body["id"] = f"{WS_PATH}/jobs/{name}"
        body["properties"]["status"] = status
        body["properties"]["displayName"] = name
        body["properties"].update(props)
        self.jobs[name] = body
        return body

    def add_child(self, parent: str, name: str, status: str) -> dict[str, Any]:
        """A trial of a sweep or AutoML job, as the run history lists it."""
        run = {
            "runId": name,
            "parentRunId": parent,
            "rootRunId": parent,
            "displayName": name,
            "status": status,
            "experimentId": "5d5c6b4a-0000-0000-0000-000000000001",
            "runType": "azureml.scriptrun",
            "properties": {},
            "tags": {},
        }
        self.children.setdefault(parent, []).append(run)
        return run

    # --- routing ------------------------------------------------------------

    def _fault(self, r: Recorded) -> tuple[int, dict[str, str], Any] | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == r.method and fault.path.search(r.path):
                fault.times -= 1
                return (
                    fault.status,
                    dict(fault.headers),
                    _error(
                        fault.code or _CODES.get(fault.status, "Error"), f"injected {fault.status}"
                    ),
                )
        return None

    def _answer(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        url = urlsplit(r.url)
        base = f"{url.scheme}://{url.netloc}"
        if r.url.startswith(self.workspace["properties"]["discoveryUrl"]):
            return 200, {}, {"api": API_HOST, "history": API_HOST}
        if base == ARM:
            return self._arm(r)
        if base == API_HOST:
            return self._run_history(r)
        if base == BLOB_HOST:
            return self._blob(r)
        return 404, {}, _error("NotFound", f"the fake has no route for {r.method} {r.url}")

    def _arm(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        path = r.path
        if m := re.fullmatch(r".*/computeOperationsStatus/([\w-]+)", path):
            op = self.operations.get(m.group(1))
            if op is None:
                return 404, {}, _error("NotFound", "no such operation")
            return 200, {}, {"name": m.group(1), **op}
        location = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/{LOCATION}"
        if path == f"{location}/vmSizes" and r.method == "GET":
            return 200, {}, fixture("vm_sizes.json")
        if path == f"{location}/usages" and r.method == "GET":
            return 200, {}, fixture("usages.json")
        if path == WS_PATH:
            return self._workspace(r)
        if not path.startswith(WS_PATH + "/"):
            return 404, {}, _error("NotFound", f"no route for {r.method} {path}")
        rest = path[len(WS_PATH) + 1 :]
        if m := re.fullmatch(r"computes/([^/]+)(?:/(start|stop|restart|resize))?", rest):
            return self._compute(r, m.group(1), m.group(2))
        if m := re.fullmatch(r"jobs/([^/]+)(?:/(cancel))?", rest):
            return self._job(r, m.group(1), m.group(2))
        if m := re.fullmatch(r"datastores(?:/([^/]+)(?:/(listSecrets))?)?", rest):
            return self._datastores(r, m.group(1), m.group(2))
        if m := re.fullmatch(r"environments/([^/]+)/versions/([^/]+)", rest):
            return self._environment(r, m.group(1), m.group(2))
        if m := re.fullmatch(r"models/([^/]+)/versions/([^/]+)", rest):
            return self._model(r, m.group(1), m.group(2))
        if m := re.fullmatch(r"onlineEndpoints/([^/]+)(?:/deployments/([^/]+))?", rest):
            return self._online(r, m.group(1), m.group(2))
        return 404, {}, _error("NotFound", f"no route for {r.method} {path}")

    def _workspace(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        if r.method == "GET":
            return 200, {"ETag": self.workspace_etag}, self.workspace
        if r.method == "PATCH":
            if_match = r.headers.get("If-Match")
            if if_match is not None and if_match not in ("*", self.workspace_etag):
                return 412, {}, _error("PreconditionFailed", "The ETag does not match")
            _merge(self.workspace, r.body or {})
            self.workspace_etag = f'"{uuid.uuid4()}"'
            return 200, {"ETag": self.workspace_etag}, self.workspace
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _operation(self, kind: str) -> dict[str, str]:
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {"status": "InProgress"}
        url = (
            f"{ARM}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices"
            f"/locations/{LOCATION}/computeOperationsStatus/{op_id}?api-version=2024-04-01&type={kind}"
        )
        header = "Location" if kind == "resize" else "Azure-AsyncOperation"
        return {header: url, "Retry-After": "15"}

    def _compute(
        self, r: Recorded, name: str, action: str | None
    ) -> tuple[int, dict[str, str], Any]:
        existing = self.computes.get(name.lower())
        if action is None and r.method == "GET":
            if existing is None:
                return 404, {}, _error("ResourceNotFound", f"compute {name} not found")
            return 200, {}, existing
        if action is None and r.method == "PUT":
            body = copy.deepcopy(r.body)
            body["name"] = name
            body["id"] = f"{WS_PATH}/computes/{name}"
            body.setdefault("type", "Microsoft.MachineLearningServices/workspaces/computes")
            props = body.setdefault("properties", {})
            props["provisioningState"] = "Creating"
            inner = props.setdefault("properties", {}) or {}
            props["properties"] = inner
            if props.get("computeType") == "ComputeInstance":
                inner["state"] = "Creating"
            self.computes[name.lower()] = body
            return 201, self._operation("create"), body
        if action is None and r.method == "PATCH":
            if existing is None:
                return 404, {}, _error("ResourceNotFound", f"compute {name} not found")
            _merge(existing, r.body or {})
            existing["properties"]["provisioningState"] = "Updating"
            return 202, self._operation("update"), None
        if action is None and r.method == "DELETE":
            if existing is None:
                return 204, {}, None
            existing["properties"]["provisioningState"] = "Deleting"
            if "state" in (existing["properties"].get("properties") or {}):
                existing["properties"]["properties"]["state"] = "Deleting"
            return 202, self._operation("delete"), None
        if existing is None:
            return 404, {}, _error("ResourceNotFound", f"compute {name} not found")
        inner = existing["properties"]["properties"]
        if action in ("start", "stop", "restart") and r.method == "POST":
            inner["state"] = {"start": "Starting", "stop": "Stopping", "restart": "Restarting"}[
                action
            ]
            return 202, self._operation(action), None
        if action == "resize" and r.method == "POST":
            inner["state"] = "Resizing"
            return 202, self._operation("resize"), None
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _job(self, r: Recorded, name: str, action: str | None) -> tuple[int, dict[str, str], Any]:
        existing = self.jobs.get(name)
        if action == "cancel" and r.method == "POST":
            if existing is None:
                return 404, {}, _error("UserError", f"job {name} not found")
            existing["properties"]["status"] = "CancelRequested"
            return 202, self._operation("cancel"), None
        if r.method == "GET":
            if existing is None:
                return 404, {}, _error("UserError", f"job {name} not found")
            return 200, {}, existing
        if r.method == "PUT":
            if existing is not None:
                return 409, {}, _error("UserError", f"A job with name {name} already exists")
            body = copy.deepcopy(r.body)
            body["name"] = name
            body["id"] = f"{WS_PATH}/jobs/{name}"
            body["properties"]["status"] = "NotStarted"
            self.jobs[name] = body
            return 201, {}, body
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _datastores(
        self, r: Recorded, name: str | None, action: str | None
    ) -> tuple[int, dict[str, str], Any]:
        """The default datastore: listed (``isDefault=true``), read, its secrets."""
        store = self.datastore
        if name is None and r.method == "GET":
            default_only = r.query.get("isDefault") == ["true"]
            found = [store] if store is not None else []
            if default_only and not found:
                return 200, {}, {"value": [], "nextLink": None}
            return 200, {}, {"value": found, "nextLink": None}
        if store is None or name != store["name"]:
            return 404, {}, _error("UserError", f"datastore {name} not found")
        if action is None and r.method == "GET":
            return 200, {}, store
        if action == "listSecrets" and r.method == "POST":
            return 200, {}, {"secretsType": "AccountKey", "key": self.datastore_key}
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _environment(self, r: Recorded, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        """Environment versions: immutable once made (a PUT with other content is refused)."""
        key = f"{name}:{version}"
        existing = self.environments.get(key)
        if r.method == "GET":
            if existing is None:
                return 404, {}, _error("UserError", f"environment {key} not found")
            return 200, {}, existing
        if r.method == "PUT":
            body = copy.deepcopy(r.body)
            if existing is not None and existing["properties"].get("condaFile") != body[
                "properties"
            ].get("condaFile"):
                return 409, {}, _error("UserError", f"environment {key} exists with other content")
            body["name"] = version
            body["id"] = f"{WS_PATH}/environments/{name}/versions/{version}"
            body["properties"].setdefault("environmentType", "UserCreated")
            self.environments[key] = body
            return (200 if existing else 201), {}, body
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _model(self, r: Recorded, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        """Model versions: immutable once made (a PUT with another path is refused)."""
        key = f"{name}:{version}"
        existing = self.models.get(key)
        if r.method == "GET":
            if existing is None:
                return 404, {}, _error("UserError", f"model {key} not found")
            return 200, {}, existing
        if r.method == "PUT":
            body = copy.deepcopy(r.body)
            uri = body["properties"].get("modelUri")
            if existing is not None and existing["properties"].get("modelUri") != uri:
                return 409, {}, _error("UserError", f"model {key} exists with other content")
            body["name"] = version
            body["id"] = f"{WS_PATH}/models/{name}/versions/{version}"
            body["type"] = "Microsoft.MachineLearningServices/workspaces/models/versions"
            self.models[key] = body
            return (200 if existing else 201), {}, body
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _online(
        self, r: Recorded, endpoint: str, deployment: str | None
    ) -> tuple[int, dict[str, str], Any]:
        """Online endpoints and their deployments: PUT makes (Creating) or
        replaces, GET reads, DELETE removes (Deleting until the test says)."""
        key = f"{endpoint}/{deployment}" if deployment else endpoint
        existing = self.online.get(key)
        if r.method == "GET":
            if existing is None:
                return 404, {}, _error("NotFound", f"{key} not found")
            return 200, {}, existing
        if r.method == "PUT":
            if deployment and endpoint not in self.online:
                return 404, {}, _error("NotFound", f"endpoint {endpoint} not found")
            body = copy.deepcopy(r.body)
            body["name"] = deployment or endpoint
            body["id"] = f"{WS_PATH}/onlineEndpoints/{key}"
            state = "Updating" if existing else "Creating"
            body["properties"]["provisioningState"] = state
            if not deployment:
                body["properties"]["scoringUri"] = (
                    f"https://{endpoint}.{LOCATION}.inference.ml.azure.com/score"
                )
            self.online[key] = body
            return (200 if existing else 201), self._operation("online"), body
        if r.method == "DELETE":
            if existing is None:
                return 404, {}, _error("NotFound", f"{key} not found")
            existing["properties"]["provisioningState"] = "Deleting"
            return 202, self._operation("online"), None
        return 405, {}, _error("MethodNotAllowed", r.method)

    def _run_history(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        m = re.fullmatch(r"/history/v1\.0.*/runs/([^/]+)/details", r.path)
        if m and r.method == "GET":
            name = m.group(1)
            if name not in self.jobs:
                return 404, {}, _error("NotFound", f"run {name} not found")
            details = fixture("run_details.json")
            details["runId"] = name
            details["status"] = self.jobs[name]["properties"]["status"]
            details["logFiles"] = {
                log: f"{BLOB_HOST}/azureml/ExperimentRun/dcid.{name}/{log}?sv=2019-07-07&sig=fake"
                for log in self.logs.get(name, {})
            }
            return 200, {}, details
        m = re.fullmatch(r"/history/v1\.0.*/runs/([^/]+)/children", r.path)
        if m and r.method == "GET":
            if m.group(1) not in self.jobs:
                return 404, {}, _error("NotFound", f"run {m.group(1)} not found")
            return 200, {}, {"value": self.children.get(m.group(1), []), "nextLink": None}
        return 404, {}, _error("NotFound", f"no route for {r.method} {r.path}")

    def _blob(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        m = re.fullmatch(r"/azureml/ExperimentRun/dcid\.([^/]+)/(.+)", r.path)
        if not m or m.group(2) not in self.logs.get(m.group(1), {}):
            return 404, {}, _error("BlobNotFound", "The specified blob does not exist.")
        data = self.logs[m.group(1)][m.group(2)].encode()
        wanted = r.headers.get("Range") or r.headers.get("x-ms-range")
        if wanted is None:
            return 200, {"Content-Type": "text/plain"}, data
        start_s, end_s = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted).groups()  # type: ignore[union-attr]
        start = int(start_s)
        if start >= len(data):
            return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
        end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
        return (
            206,
            {"Content-Type": "text/plain", "Content-Range": f"bytes {start}-{end}/{len(data)}"},
            data[start : end + 1],
        )


def _raw(request: Any) -> bytes:
    """The request's body as bytes (a stream, e.g. an uploaded file, is read)."""
    raw = getattr(request, "content", None)
    if raw is None:
        raw = getattr(request, "data", None) or getattr(request, "body", None)
    if raw is None:
        return b""
    if isinstance(raw, str):
        return raw.encode()
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if hasattr(raw, "read"):
        return bytes(raw.read())
    if isinstance(raw, dict):
        return json.dumps(raw).encode()
    return b"".join(bytes(chunk) for chunk in raw)


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text)
    except ValueError:
        return text


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CODES = {
    400: "BadRequest",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
