"""The request type views take: signed in, with django-htmx's details."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails
from rest_framework.request import Request

from accounts.models import User


class AuthedRequest(HttpRequest):
    """A request that passed ``login_required``: ``user`` is a real ``User``.

    Views behind ``login_required`` annotate their request with this type, so
    the user and ``htmx`` are typed without casts.
    """

    user: User
    htmx: HtmxDetails


class AuthedApiRequest(Request):
    """A DRF request that passed authentication (``IsAuthenticated``)."""

    user: User


def request_user(request: HttpRequest | Request) -> User:
    """The signed-in user of a request that passed authentication (for code
    that receives the untyped request, e.g. a DRF ``get_queryset``)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user
