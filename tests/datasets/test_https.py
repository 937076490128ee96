"""An HTTPS source against a real local TLS server (its own CA, allowlisted)."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from datasets import services
from datasets.models import IngestionStatus
from tests.datasets.conftest import CSV


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/export/customers.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV)))
            self.end_headers()
            self.wfile.write(CSV)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "https://169.254.169.254/")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path, settings: Any) -> Iterator[int]:
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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


def test_https_source_pulls_and_refuses_redirects_and_errors(
    tls_server: int, project: Any, alice: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    base = f"https://localhost:{tls_server}"
    source = services.source_create(
        actor=alice,
        project=project,
        name="Export",
        kind="https",
        config={"url": f"{base}/export/customers.csv"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.source_test_request(actor=alice, source=source)
    source.refresh_from_db()
    assert source.test_status == "ok", source.test_message

    with django_capture_on_commit_callbacks(execute=True):
        ingestion = services.source_pull_request(actor=alice, source=source)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    assert ingestion.snapshot is not None
    assert ingestion.snapshot.sha256 == hashlib.sha256(CSV).hexdigest()

    for path, reason in (("/moved", "302"), ("/missing.csv", "404")):
        services.source_update(actor=alice, source=source, config={"url": f"{base}{path}"})
        with django_capture_on_commit_callbacks(execute=True):
            failed = services.source_pull_request(actor=alice, source=source)
        failed.refresh_from_db()
        assert failed.status == IngestionStatus.FAILED
        assert reason in failed.error


def test_an_untrusted_certificate_fails_the_test(
    tls_server: int,
    project: Any,
    alice: Any,
    settings: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.DATA_HTTPS_CA_FILE = ""
    source = services.source_create(
        actor=alice,
        project=project,
        name="Untrusted",
        kind="https",
        config={"url": f"https://localhost:{tls_server}/export/customers.csv"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.source_test_request(actor=alice, source=source)
    source.refresh_from_db()
    assert source.test_status == "failed"
    assert "CERTIFICATE_VERIFY_FAILED" in source.test_message
