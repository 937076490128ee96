"""Start-up of the web process under `make run`: warmed up before it listens,
and the banner only once the portal answers."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from portal import gunicorn as gunicorn_settings
from portal.wsgi import application


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_banner_waits_until_the_portal_answers(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    printed_at: list[float] = []

    def announce() -> None:
        gunicorn_settings.announce_when_serving(url, "Stagegate is running", timeout=30)
        printed_at.append(time.monotonic())

    waiter = threading.Thread(target=announce)
    waiter.start()
    time.sleep(1.0)
    assert not printed_at, "the banner came before anything listened"
    assert "Stagegate is running" not in capsys.readouterr().out
    server = ThreadingHTTPServer(("127.0.0.1", port), Answer)
    listening_at = time.monotonic()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        waiter.join(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert printed_at and printed_at[0] >= listening_at
    # Any answer means it serves, even "503: the worker is not up yet".
    assert "Stagegate is running" in capsys.readouterr().out


def test_the_banner_names_the_address_make_run_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9123")
    assert gunicorn_settings.banner_url() == "http://0.0.0.0:9123/"
    # Listening everywhere: asked on the loopback.
    assert gunicorn_settings._probe_url() == "http://127.0.0.1:9123/healthz"


def test_nothing_answering_is_not_ready() -> None:
    assert not gunicorn_settings.answers(f"http://127.0.0.1:{free_port()}/healthz")


def test_the_application_is_loaded_before_it_listens() -> None:
    assert gunicorn_settings.preload_app is True


@pytest.mark.django_db(transaction=True)
def test_warm_up_renders_the_first_page_and_leaves_no_connection_to_share() -> None:
    from django.db import connection

    statuses = gunicorn_settings.warm_up(application)
    assert statuses == {"/accounts/login/": "200 OK"}
    assert connection.connection is None, "a forked worker would share this connection"
