"""Health of the parts the portal needs: database, broker, a live worker."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from kombu import Connection

from portal.celery import app


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down", and says why
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=2,
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "transport": str(transport)}


def check_workers() -> dict[str, Any]:
    try:
        replies = app.control.ping(timeout=settings.HEALTHZ_PING_TIMEOUT) or []
    except Exception as exc:
        return {"ok": False, "workers": [], "error": f"{type(exc).__name__}: {exc}"[:300]}
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return {"ok": False, "workers": [], "error": "No worker answered the ping."}
    return {"ok": True, "workers": names}


def health() -> dict[str, Any]:
    checks = {"database": check_database(), "broker": check_broker()}
    # Pinging workers needs the broker; without it, say so instead of waiting.
    if checks["broker"]["ok"]:
        checks["workers"] = check_workers()
    else:
        checks["workers"] = {"ok": False, "workers": [], "error": "Broker is down."}
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
