"""A scoring process: one MLflow pyfunc model behind ``POST /score`` (run by path).

Runs INSIDE the sandbox (``cloud/sandbox.py``), like a job: an environment
from scratch, no network but its own loopback, and only its own folders. It
listens on a unix socket in its run folder; the endpoint's router
(``cloud/local_serving.py``), outside, sends it the requests.

``python scoring_server.py CONFIG`` where CONFIG is a JSON file::

    {"model_dir": ..., "socket": ..., "key_file": ..., "sample_rate": 0.1,
     "sensitive_columns": [...], "sample_log": ..., "deployment": "blue"}

- ``POST /score``: a pandas DataFrame as MLflow's ``/invocations`` takes it
  (``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` or
  ``{"dataframe_records": [{...}]}``), answered ``{"predictions": [...]}``.
  The caller's key comes as ``Authorization: Bearer KEY`` (or ``api-key:
  KEY``); its sha256 is compared in constant time with the endpoint's, read
  from ``key_file`` (again whenever the file is replaced: a new key applies at
  once). The process never holds the key itself.
- ``GET /health``: 200 once the model is loaded (no key: it says nothing).
- Sampled requests (``sample_rate``) are appended to ``sample_log`` as JSON
  lines, one per input row with its prediction, without the sensitive columns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

MAX_BODY_BYTES = 16 * 1024**2


def key_matches(given: str, key_sha256: str) -> bool:
    digest = hashlib.sha256(given.encode()).hexdigest()
    return bool(key_sha256) and hmac.compare_digest(digest, key_sha256)


def caller_key(headers: Any) -> str:
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return str(auth[7:].strip())
    return str(headers.get("api-key", "")).strip()


class BadInput(ValueError):
    pass


def parse_frame(body: bytes) -> Any:
    """The request's DataFrame (MLflow's split or records orientation)."""
    import pandas as pd

    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"The body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadInput("Send a JSON object with dataframe_split or dataframe_records")
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise BadInput("dataframe_split needs columns and data (a list of rows)")
        try:
            return pd.DataFrame(
                split["data"], columns=split.get("columns"), index=split.get("index")
            )
        except (ValueError, TypeError) as exc:
            raise BadInput(f"dataframe_split does not make a table: {exc}") from exc
    if "dataframe_records" in payload:
        records = payload["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadInput("dataframe_records is a list of objects")
        return pd.DataFrame.from_records(records)
    raise BadInput("Send a JSON object with dataframe_split or dataframe_records")


def to_jsonable(predictions: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series | np.ndarray):
        return predictions.tolist()
    return predictions


class Scorer:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.key_file = str(config.get("key_file", ""))
        self.key_version: tuple[int, int] = (-1, -1)
        self.key_sha256 = ""
        self.sample_rate = float(config.get("sample_rate", 0.0))
        self.sensitive = set(config.get("sensitive_columns", []))
        self.sample_log = str(config.get("sample_log", ""))
        self.deployment = str(config.get("deployment", ""))
        self.model: Any = None
        self.log_lock = threading.Lock()

    def load(self) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(self.config["model_dir"])

    def current_key(self) -> str:
        try:
            st = os.stat(self.key_file)
        except OSError:
            return ""
        version = (st.st_mtime_ns, st.st_ino)
        if version != self.key_version:
            with open(self.key_file) as f:
                self.key_sha256 = f.read().strip()
            self.key_version = version
        return self.key_sha256

    def predict(self, frame: Any) -> Any:
        return to_jsonable(self.model.predict(frame))

    def sample(self, frame: Any, predictions: Any) -> None:
        if not self.sample_log or self.sample_rate <= 0 or random.random() >= self.sample_rate:  # noqa: S311
            return
        kept = frame.drop(columns=[c for c in frame.columns if str(c) in self.sensitive])
        rows = json.loads(kept.to_json(orient="records", date_format="iso"))
        preds = predictions if isinstance(predictions, list) else [predictions] * len(rows)
        now = time.time()
        lines = [
            json.dumps({"ts": now, "deployment": self.deployment, "input": row, "prediction": p})
            for row, p in zip(rows, preds, strict=False)
        ]
        with self.log_lock, open(self.sample_log, "a") as f:
            f.write("".join(line + "\n" for line in lines))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # no access log: a request line may carry anything

    def answer(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self.answer(200, {"status": "ok", "deployment": self.server.scorer.deployment})
        else:
            self.answer(404, {"error": "Not found"})

    def do_POST(self) -> None:
        scorer = self.server.scorer
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self.answer(413, {"error": "The body is too large"})
            return
        body = self.rfile.read(length) if length else b""
        if self.path != "/score":
            self.answer(404, {"error": "Not found"})
            return
        if not key_matches(caller_key(self.headers), scorer.current_key()):
            self.answer(401, {"error": "A valid endpoint key is needed (Authorization: Bearer)"})
            return
        try:
            frame = parse_frame(body)
            predictions = scorer.predict(frame)
        except BadInput as exc:
            self.answer(400, {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the model refused the input
            self.answer(400, {"error": f"The model could not score the input: {exc}"[:2000]})
            return
        self.answer(200, {"predictions": predictions})
        try:
            scorer.sample(frame, predictions)
        except Exception as exc:  # noqa: BLE001 - logging never fails a request
            print(f"sampling failed: {exc!r}", file=sys.stderr, flush=True)


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, scorer: Scorer) -> None:
        self.scorer = scorer
        super().__init__(path, Handler)


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        config = json.load(f)
    scorer = Scorer(config)
    scorer.load()
    path = config["socket"]
    if os.path.exists(path):
        os.unlink(path)
    server = Server(path, scorer)
    print(f"scoring {config['deployment']} on {path}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
