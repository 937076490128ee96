from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import PersonalAccessToken, hash_token
from accounts.services import token_create, token_revoke
from audit.models import AuditEvent


def test_login_and_logout_are_audited(db: Any, client: Any, alice: Any, password: str) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": password})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    client.post(reverse("logout"))
    actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions == ["auth.login", "auth.logout"]


def test_failed_login_is_audited_without_the_password(db: Any, client: Any, alice: Any) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong-guess"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.payload == {"username": "alice"}
    assert "wrong-guess" not in str(event.payload)


def test_login_attempts_are_rate_limited(
    db: Any, client: Any, alice: Any, password: str, settings: Any
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "alice", "password": "nope"})
    # Now even the right password is refused for a while.
    response = client.post(reverse("login"), {"username": "alice", "password": password})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_need_login(db: Any, client: Any) -> None:
    for url in ["/", "/accounts/profile/", "/projects/", "/audit/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


def test_token_is_shown_once_and_stored_hashed(db: Any, client_for: Any, alice: Any) -> None:
    client = client_for(alice)
    response = client.post(reverse("profile"), {"name": "notebook"})
    assert response.status_code == 302
    response = client.get(reverse("profile"))
    assert response["Cache-Control"] == "no-store"
    token = PersonalAccessToken.objects.get(user=alice)
    raw = response.context["new_token"]
    assert raw.startswith("sgp_")
    assert token.token_hash == hash_token(raw)
    assert raw not in str(PersonalAccessToken.objects.values_list().get(pk=token.pk))
    assert raw not in client.get(reverse("profile")).content.decode()
    assert AuditEvent.objects.filter(action="token.created", actor=alice).count() == 1


def test_token_name_is_required(db: Any, client_for: Any, alice: Any) -> None:
    response = client_for(alice).post(reverse("profile"), {"name": ""})
    assert "This field is required" in response.content.decode()
    assert not PersonalAccessToken.objects.exists()


def test_bearer_token_authenticates_api_and_revoked_token_is_refused(
    db: Any, client: Any, alice: Any
) -> None:
    token, raw = token_create(user=alice, name="script")
    response = client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None

    token_revoke(user=alice, token_id=token.pk)
    response = client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token."}
    assert AuditEvent.objects.filter(action="token.revoked").count() == 1


def test_garbage_and_missing_tokens(db: Any, client: Any) -> None:
    assert client.get("/api/projects/", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get("/api/projects/", HTTP_AUTHORIZATION="Bearer a b").status_code == 401
    assert client.get("/api/projects/").status_code in (401, 403)


def test_users_revoke_only_their_own_tokens(
    db: Any, client_for: Any, alice: Any, charlie: Any
) -> None:
    token, _ = token_create(user=alice, name="mine")
    response = client_for(charlie).post(reverse("token_revoke", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_create_api_token_command_prints_only_the_token(db: Any, alice: Any) -> None:
    out = io.StringIO()
    call_command("create_api_token", "alice", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("sgp_") and "\n" not in raw
    assert PersonalAccessToken.objects.filter(token_hash=hash_token(raw), user=alice).exists()


def test_create_api_token_command_unknown_user(db: Any) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "nobody")


def test_seed_demo_is_idempotent(db: Any) -> None:
    from accounts.models import User
    from projects.models import Membership

    call_command("seed_demo", stdout=io.StringIO())
    counts = (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count())
    call_command("seed_demo", stdout=io.StringIO())
    assert (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count()) == counts
    assert User.objects.get(username="admin").is_staff
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == {
        "lead",
        "data_scientist",
        "data_engineer",
        "ml_engineer",
        "analyst",
        "validator",
        "business_approver",
    }


def test_api_schema_and_docs_are_served_locally(db: Any, client_for: Any, alice: Any) -> None:
    client = client_for(alice)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/projects/{slug}/members/" in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower() and "unpkg" not in docs
