"""gunicorn's settings for `make run` (supervisord.conf: ``-c python:portal.gunicorn``).

The application is loaded once, in gunicorn's main process, before it listens
(``preload_app``), and warmed up there: every view module imported and the
login page rendered once, so that the workers forked from it answer the first
request at once instead of importing Django, the views and their libraries
while someone waits. The banner saying where the portal is prints only when it
answers.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from wsgiref.util import setup_testing_defaults

preload_app = True

# The first page a person opens; rendering it once imports and compiles what
# every page shares (the URL configuration, the middleware, the base layout).
WARM_UP_PATHS = ("/accounts/login/",)
READY_TIMEOUT = 300.0


def warm_up(application: Any) -> dict[str, str]:
    """Import every view and render the first pages once, in this process;
    the status each page answered, by path."""
    from django.conf import settings
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 -- imports every urls and views module
    host = next((h for h in settings.ALLOWED_HOSTS if h and "*" not in h), "127.0.0.1")
    statuses: dict[str, str] = {}
    for path in WARM_UP_PATHS:
        environ: dict[str, Any] = {"PATH_INFO": path, "HTTP_HOST": host.lstrip(".")}
        setup_testing_defaults(environ)

        def start_response(status: str, headers: Any, exc_info: Any = None, p: str = path) -> None:
            statuses[p] = status

        body = application(environ, start_response)
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()
    # The workers are forked from this process: they must not share its connections.
    connections.close_all()
    return statuses


def banner_url() -> str:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    return f"http://{host}:{port}/"


def _probe_url() -> str:
    host = os.environ.get("HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 -- where it listens, not a bind
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('PORT', '8000')}/healthz"


def answers(url: str) -> bool:
    """Whether anything HTTP answers at ``url`` (any status: it is serving)."""
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 -- our own loopback URL
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def announce_when_serving(url: str, message: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            print(f"\n  {message}\n", file=sys.stdout, flush=True)
            return
        time.sleep(0.2)


def on_starting(server: Any) -> None:
    warm_up(server.app.wsgi())


def when_ready(server: Any) -> None:
    message = f"Stagegate is running at {banner_url()}  (Ctrl-C stops web, worker and beat)"
    threading.Thread(
        target=announce_when_serving, args=(_probe_url(), message), daemon=True
    ).start()
