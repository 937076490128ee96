"""The Celery application: one for web, worker and beat."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Queues by kind of work; CELERY_TASK_ROUTES in settings sends each app's tasks to one.
QUEUES = ("default", "provisioning", "training", "data")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.autodiscover_tasks()


@app.task(name="portal.ping")
def ping() -> str:
    """Answer with 'pong': used by the health check and the round-trip test."""
    return "pong"


@app.task(name="portal.leases_recover", ignore_result=True)
def leases_recover() -> dict[str, dict[str, list[object]]]:
    """Beat: send again (or fail) the background work whose lease ran out,
    for every kind the apps registered (background.leases)."""
    from background.leases import recover_all

    return recover_all()
