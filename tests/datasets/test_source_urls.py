"""Source addresses are checked when a source is registered, not at its pull."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import DataSource, IngestionStatus
from tests.datasets.conftest import CSV
from tests.datasets.test_https import self_signed

REFUSED = [
    ("https://user:pass@[::1]:99999/x.csv", "credentials in the URL"),
    ("https://user:pass@example.com/x.csv", "Password secret"),
    ("https://token@example.com/x.csv", "credentials in the URL"),
    ("https:///x.csv", "no host"),
    ("https://:443/x.csv", "no host"),
    ("https://example.com:99999/x.csv", "between 1 and 65535"),
    ("https://example.com:0/x.csv", "between 1 and 65535"),
    ("https://[::1/x.csv", "Not a valid URL"),
    ("https://exa mple.com/x.csv", "not a valid host"),
    ("http://example.com/x.csv", "Only https://"),
    ("ftp://example.com/x.csv", "Only https://"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_https_urls_are_refused_at_registration(
    project: Any, alice: Any, url: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.source_create(
            actor=alice, project=project, name="Export", kind="https", config={"url": url}
        )
    assert reason in caught.value.message_dict["url"][0]
    assert not DataSource.objects.exists()


@pytest.mark.parametrize(("url", "reason"), REFUSED[:6])
def test_the_api_answers_400_with_the_reason(
    project: Any, alice: Any, api_for: Any, url: str, reason: str
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/",
        {"name": "Export", "kind": "https", "config": {"url": url}},
        format="json",
    )
    assert response.status_code == 400
    assert reason in response.json()["url"][0]
    assert not DataSource.objects.exists()


def test_the_page_shows_the_reason(project: Any, alice: Any, client_for: Any) -> None:
    response = client_for(alice).post(
        "/projects/churn/data/new/",
        {
            "name": "Export",
            "kind": "https",
            "location": "cloud",
            "mode": "batch",
            "url": "https://user:pass@[::1]:99999/x.csv",
        },
    )
    assert response.status_code == 200
    assert "Password secret" in response.content.decode()
    assert not DataSource.objects.exists()


def test_an_update_is_checked_too(project: Any, alice: Any) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="Export",
        kind="https",
        config={"url": "https://example.com/x.csv"},
    )
    with pytest.raises(ValidationError, match="no host"):
        services.source_update(actor=alice, source=source, config={"url": "https:///y.csv"})
    source.refresh_from_db()
    assert source.config["url"] == "https://example.com/x.csv"


@pytest.mark.parametrize(
    ("config", "field", "reason"),
    [
        ({"host": "db.example.com/x"}, "host", "host name or an IP address"),
        ({"host": "db example"}, "host", "host name or an IP address"),
        ({"host": "[::1]"}, "host", "host name or an IP address"),
        ({"port": 99999}, "port", "between 1 and 65535"),
        ({"port": -1}, "port", "between 1 and 65535"),
        ({"port": "five"}, "port", "port number"),
    ],
)
def test_postgres_hosts_and_ports_are_checked(
    project: Any, alice: Any, config: dict[str, Any], field: str, reason: str
) -> None:
    base = {"host": "db.example.com", "database": "crm", "user": "reader", "query": "select 1"}
    with pytest.raises(ValidationError) as caught:
        services.source_create(
            actor=alice, project=project, name="CRM", kind="postgres", config={**base, **config}
        )
    assert reason in caught.value.message_dict[field][0]


@pytest.mark.parametrize("host", ["db.example.com", "10.0.0.5", "::1", "db_1"])
def test_valid_postgres_hosts_are_taken(project: Any, alice: Any, host: str) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="CRM",
        kind="postgres",
        config={"host": host, "database": "crm", "user": "reader", "query": "select 1"},
    )
    assert source.config["host"] == host


class BasicAuthHandler(http.server.BaseHTTPRequestHandler):
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("Authorization") != self.expected:
            self.send_error(401)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(CSV)))
        self.end_headers()
        self.wfile.write(CSV)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def auth_server(tmp_path: Path, settings: Any) -> Iterator[int]:
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BasicAuthHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.DATA_HTTPS_CA_FILE = str(cert)
    settings.DATA_EGRESS_LOOPBACK_PORTS = [int(server.server_address[1])]
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_https_credentials_go_in_the_user_field_and_password_secret(
    auth_server: int,
    project: Any,
    alice: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = f"https://localhost:{auth_server}/export.csv"
    source = services.source_create(
        actor=alice, project=project, name="Export", kind="https", config={"url": url}
    )
    with django_capture_on_commit_callbacks(execute=True):
        refused = services.source_pull_request(actor=alice, source=source)
    refused.refresh_from_db()
    assert refused.status == IngestionStatus.FAILED
    assert "401" in refused.error

    services.source_update(
        actor=alice, source=source, config={"user": "reader"}, secrets={"password": "s3cret"}
    )
    source.refresh_from_db()
    assert "s3cret" not in str(source.config)
    assert source.secret_names == ["password"]
    with django_capture_on_commit_callbacks(execute=True):
        pulled = services.source_pull_request(actor=alice, source=source)
    pulled.refresh_from_db()
    assert pulled.status == IngestionStatus.SUCCEEDED, pulled.error
