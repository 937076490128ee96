"""In-app notifications, with an e-mail to each recipient after commit."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Notification

logger = logging.getLogger(__name__)


def notify(*, users: Iterable[Any], text: str, url: str = "") -> list[Notification]:
    """Notify users in the app, and by e-mail once the transaction commits."""
    notes = Notification.objects.bulk_create(
        [Notification(user=u, text=text[:300], url=url) for u in users]
    )
    recipients = sorted({n.user.email for n in notes if n.user.email})
    if recipients:
        transaction.on_commit(lambda: _send(recipients, text, url))
    return notes


def _send(recipients: list[str], text: str, url: str) -> None:
    body = text + (f"\n\n{settings.PORTAL_BASE_URL.rstrip('/')}{url}" if url else "")
    try:
        send_mail(f"[Stagegate] {text[:80]}", body, None, recipients)
    except OSError:
        # The in-app notification stands; a mail outage must not undo a decision.
        logger.exception("could not send notification e-mail to %s", recipients)


def notifications_mark_read(*, user: Any) -> int:
    """Mark all the user's notifications read; return how many were unread.

    Not audited: reading a notification decides nothing.
    """
    return Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
