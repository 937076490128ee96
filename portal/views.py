from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from governance.selectors import pending_approvals_for_user
from portal.forms import TokenForm
from portal.health import health
from portal.http import client_ip
from portal.selectors import dashboard_memberships, user_tokens
from portal.services import token_create, token_revoke

NEW_TOKEN_SESSION_KEY = "portal:new_token"  # noqa: S105 (a session key name)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/home.html",
        {
            "memberships": dashboard_memberships(user=request.user),  # type: ignore[arg-type]
            "pending": pending_approvals_for_user(user=request.user),  # type: ignore[arg-type]
        },
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = TokenForm()
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                _, raw = token_create(
                    user=request.user,  # type: ignore[arg-type]
                    name=form.cleaned_data["name"],
                    ip_address=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                # Post/redirect/get, so a reload cannot create a second token;
                # the raw value waits in the session for one page view only.
                request.session[NEW_TOKEN_SESSION_KEY] = raw
                return redirect("profile")
    response = render(
        request,
        "portal/profile.html",
        {
            "form": form,
            "new_token": request.session.pop(NEW_TOKEN_SESSION_KEY, None),
            "tokens": user_tokens(user=request.user),  # type: ignore[arg-type]
        },
    )
    # The page may show a token once; never let a cache keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    from portal.models import PersonalAccessToken

    try:
        token = token_revoke(user=request.user, token_id=token_id, ip_address=client_ip(request))  # type: ignore[arg-type]
    except PersonalAccessToken.DoesNotExist:
        return HttpResponse("No such token.", status=404)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("profile")
