"""Personal access tokens expire: 90 days by default, chosen at creation."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import PersonalAccessToken, hash_token
from accounts.services import token_create


def _days_left(token: PersonalAccessToken) -> float:
    return (token.expires_at - token.created_at).total_seconds() / 86400


def test_a_token_lives_90_days_by_default(db: Any, alice: Any) -> None:
    token, _ = token_create(user=alice, name="script")
    assert _days_left(token) == 90
    assert token.is_active and not token.is_expired


def test_the_lifetime_is_one_of_the_choices(db: Any, alice: Any) -> None:
    token, _ = token_create(user=alice, name="short", lifetime_days=7)
    assert _days_left(token) == 7
    with pytest.raises(ValidationError, match="Choose one of"):
        token_create(user=alice, name="forever", lifetime_days=100_000)


def test_an_expired_token_is_refused_with_a_clear_message(db: Any, client: Any, alice: Any) -> None:
    token, raw = token_create(user=alice, name="script")
    assert client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    expired = timezone.now() - timedelta(minutes=1)
    PersonalAccessToken.objects.filter(pk=token.pk).update(expires_at=expired)
    response = client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    detail = response.json()["detail"]
    assert detail.startswith(f"Token expired on {expired:%Y-%m-%d %H:%M} UTC")


def test_last_use_is_recorded(db: Any, client: Any, alice: Any) -> None:
    token, raw = token_create(user=alice, name="script")
    assert token.last_used_at is None
    client.get("/api/projects/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_profile_page_offers_and_shows_the_expiry(db: Any, client_for: Any, alice: Any) -> None:
    client = client_for(alice)
    page = client.get(reverse("profile")).content.decode()
    assert 'name="lifetime_days"' in page
    assert '<option value="90" selected>' in page
    assert client.post(reverse("profile"), {"name": "nb", "lifetime_days": "30"}).status_code == 302
    token = PersonalAccessToken.objects.get(user=alice)
    assert _days_left(token) == 30
    page = client.get(reverse("profile")).content.decode()
    expires = f"{token.expires_at:%Y-%m-%d %H:%M}"
    assert f"expires on {expires} UTC" in page
    assert expires in client.get(reverse("profile")).content.decode()  # in the list, too

    response = client.post(reverse("profile"), {"name": "nb2", "lifetime_days": "3650"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_expired_tokens_are_listed_as_expired(db: Any, client_for: Any, alice: Any) -> None:
    token, _ = token_create(user=alice, name="old")
    PersonalAccessToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    page = client_for(alice).get(reverse("profile")).content.decode()
    assert "<td>expired</td>" in page


def test_create_api_token_command_takes_the_lifetime(db: Any, alice: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "alice", "--days", "7", stdout=out, stderr=err)
    token = PersonalAccessToken.objects.get(token_hash=hash_token(out.getvalue().strip()))
    assert _days_left(token) == 7
    assert f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" in err.getvalue()
