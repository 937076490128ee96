"""Health of the parts the portal needs: database, broker, workers that
consume every queue, and the background work waiting for them."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from kombu import Connection

from portal.celery import QUEUES, app, ping


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


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each queue, as the broker counts them (``None``
    where it cannot tell)."""
    depths: dict[str, int | None] = {}
    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=2,
    ) as conn:
        channel = conn.default_channel
        for name in QUEUES:
            try:
                depths[name] = int(channel.queue_declare(queue=name).message_count)
            except Exception:
                depths[name] = None
    return depths


def check_queues() -> dict[str, Any]:
    """A tiny task through every queue and back, within one deadline.

    A ping proves that a worker's main process listens; only a round trip
    proves that some worker takes tasks from the queue and runs them (its
    pool may be dead, blocked or busy, or no worker may consume the queue).
    """
    deadline = time.monotonic() + settings.HEALTHZ_ROUNDTRIP_TIMEOUT
    started = time.monotonic()
    sent = {
        name: ping.apply_async(queue=name, expires=settings.HEALTHZ_ROUNDTRIP_TIMEOUT)
        for name in QUEUES
    }
    queues: dict[str, Any] = {}
    for name, result in sent.items():
        try:
            answer = result.get(timeout=max(0.1, deadline - time.monotonic()), interval=0.1)
        except Exception as exc:
            queues[name] = {
                "ok": False,
                "error": f"No answer within the deadline ({type(exc).__name__}).",
            }
        else:
            queues[name] = {"ok": answer == "pong", "seconds": round(time.monotonic() - started, 3)}
        finally:
            result.forget()
    try:
        depths = queue_depths()
    except Exception:
        depths = dict.fromkeys(QUEUES)
    for name, depth in depths.items():
        queues[name]["depth"] = depth
    stuck = sorted(name for name, q in queues.items() if not q["ok"])
    report: dict[str, Any] = {"ok": not stuck, "queues": queues}
    if stuck:
        report["error"] = (
            f"No worker ran a task from {', '.join(stuck)} within "
            f"{settings.HEALTHZ_ROUNDTRIP_TIMEOUT:g} s."
        )
    return report


def check_background_work() -> dict[str, Any]:
    """Work sent to the workers and not taken yet: how much, how old."""
    from background.leases import waiting

    try:
        return {"ok": True, **waiting()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def check_sandbox() -> dict[str, Any]:
    """Whether the local provider runs user code in a sandbox. Reported, not
    judged: without one only platform admins' notebooks run, and the
    workspaces page says why."""
    if settings.CLOUD_PROVIDER != "local":
        return {"ok": True, "provider": settings.CLOUD_PROVIDER}
    from workspaces.services import local_isolation_status

    available, reason = local_isolation_status()
    return {"ok": True, "available": available, "detail": reason}


def health() -> dict[str, Any]:
    checks = {"database": check_database(), "broker": check_broker()}
    # Pinging workers needs the broker; without it, say so instead of waiting.
    if checks["broker"]["ok"]:
        checks["workers"] = check_workers()
    else:
        checks["workers"] = {"ok": False, "workers": [], "error": "Broker is down."}
    if checks["workers"]["ok"]:
        checks["queues"] = check_queues()
    else:
        checks["queues"] = {"ok": False, "error": "No worker to run a task."}
    ok = all(c["ok"] for c in checks.values())
    if checks["database"]["ok"]:
        # Reported, not judged: a long queue is a reason to add workers, not a fault.
        checks["background_work"] = check_background_work()
    checks["sandbox"] = check_sandbox()
    return {"ok": ok, "checks": checks}
