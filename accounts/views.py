"""The user's own pages: profile with personal access tokens, notifications."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import TokenForm
from accounts.http import AuthedRequest
from accounts.models import Notification, PersonalAccessToken
from accounts.notifications import notifications_mark_read
from accounts.selectors import user_tokens
from accounts.services import token_create, token_revoke
from web.http import client_ip

NEW_TOKEN_SESSION_KEY = "portal:new_token"  # noqa: S105 (a session key name)
NEW_TOKEN_EXPIRES_SESSION_KEY = "portal:new_token_expires"  # noqa: S105
NOTIFICATIONS_SHOWN = 50


@login_required
def profile(request: AuthedRequest) -> HttpResponse:
    form = TokenForm()
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                token, raw = token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    lifetime_days=form.cleaned_data["lifetime_days"],
                    ip_address=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                # Post/redirect/get, so a reload cannot create a second token;
                # the raw value waits in the session for one page view only.
                request.session[NEW_TOKEN_SESSION_KEY] = raw
                request.session[NEW_TOKEN_EXPIRES_SESSION_KEY] = token.expires_at.strftime(
                    "%Y-%m-%d %H:%M UTC"
                )
                return redirect("profile")
    response = render(
        request,
        "accounts/profile.html",
        {
            "form": form,
            "new_token": request.session.pop(NEW_TOKEN_SESSION_KEY, None),
            "new_token_expires": request.session.pop(NEW_TOKEN_EXPIRES_SESSION_KEY, None),
            "tokens": user_tokens(user=request.user),
        },
    )
    # The page may show a token once; never let a cache keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: AuthedRequest, token_id: int) -> HttpResponse:
    try:
        token = token_revoke(user=request.user, token_id=token_id, ip_address=client_ip(request))
    except PersonalAccessToken.DoesNotExist:
        return HttpResponse("No such token.", status=404)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("profile")


def _safe_link(url: str) -> str:
    # Notifications link inside the portal; anything else is shown without a link.
    return url if url.startswith("/") and not url.startswith("//") else ""


@login_required
@require_http_methods(["GET", "POST"])
def notification_list(request: AuthedRequest) -> HttpResponse:
    """The user's notifications, newest first; POST marks them all read."""
    user = request.user
    if request.method == "POST":
        marked = notifications_mark_read(user=user)
        messages.success(request, f"{marked} notification{'s' if marked != 1 else ''} marked read.")
        return redirect("notifications")
    query = request.GET.get("q", "").strip()[:100]
    oldest = request.GET.get("sort") == "oldest"
    notes_all = Notification.objects.filter(user=user)
    if query:
        notes_all = notes_all.filter(text__icontains=query)
    if request.GET.get("unread"):
        notes_all = notes_all.filter(read_at__isnull=True)
    notes_all = notes_all.order_by(*(("created_at", "pk") if oldest else ("-created_at", "-pk")))
    page = Paginator(notes_all, NOTIFICATIONS_SHOWN).get_page(request.GET.get("page"))
    for note in page.object_list:
        note.link = _safe_link(note.url)  # type: ignore[attr-defined]
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "accounts/notifications.html",
        {
            "notes": page,
            "page": page,
            "query": params.urlencode(),
            "q": query,
            "oldest": oldest,
            "only_unread": bool(request.GET.get("unread")),
            "unread": Notification.objects.filter(user=user, read_at__isnull=True).count(),
        },
    )
