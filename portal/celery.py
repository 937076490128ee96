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
