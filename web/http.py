"""The client's address, behind as many trusted proxies as configured."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings


def client_ip(request: Any) -> str | None:
    """Return the caller's IP address.

    With ``DJANGO_PROXY_COUNT`` = n > 0, the n-th address from the right of
    X-Forwarded-For is the client (each trusted proxy appends one); otherwise
    the socket's peer address. Anything unparsable gives None.
    """
    if request is None:
        return None
    meta = getattr(request, "META", {})
    candidate = meta.get("REMOTE_ADDR")
    count = settings.PROXY_COUNT
    if count:
        forwarded = [
            p.strip() for p in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()
        ]
        if len(forwarded) >= count:
            candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate)) if candidate else None
    except ValueError:
        return None
