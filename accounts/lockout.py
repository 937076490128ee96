"""Sign-in lockout: django-axes, counting per address as well as per address
and username.

With ``AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"], "ip_address"]``
axes counts failures for both, but holds them against one limit. This
handler gives each its own: ``AXES_FAILURE_LIMIT`` failures for one username
from one address lock that pair; ``AXES_ADDRESS_FAILURE_LIMIT`` failures from
one address, whatever the usernames (password spraying), lock the address.
Nothing locks an account everywhere: someone failing against a name from
their address cannot keep its owner out from another address.

A successful sign-in clears only its own pair's failures, so a sprayer who
also has an account cannot reset the address's count by signing in.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import QuerySet, Sum


def _address_attempts(request: Any) -> QuerySet[AccessAttempt]:
    attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts


def _failures(attempts: QuerySet[AccessAttempt]) -> int:
    return int(attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0)


class AddressAndPairHandler(AxesDatabaseHandler):  # type: ignore[misc]
    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        """Failures held against this request: the pair's, or the limit itself
        once the address has reached its own limit."""
        attempts = _address_attempts(request)
        username = get_client_username(request, credentials)
        pair = _failures(attempts.filter(username=username))
        if _failures(attempts) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            return max(pair, settings.AXES_FAILURE_LIMIT)
        return pair

    def reset_user_attempts(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, username=username
        ).delete()
        return int(count)
