"""Sign-in lockout (django-axes, accounts/lockout.py): per address and
username, and per address across usernames; never an account as such."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from tests.factories import UserFactory

SPRAYER = "203.0.113.7"
OWNER_ADDRESS = "198.51.100.20"


def _sign_in(client: Any, username: str, password: str, address: str) -> Any:
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def _signed_in(client: Any) -> bool:
    return "_auth_user_id" in client.session


def test_spraying_many_usernames_from_one_address_locks_the_address(
    db: Any, client: Any, alice: Any, password: str, settings: Any
) -> None:
    # One guess per username: never the per-username limit, always the address's.
    limit = settings.AXES_ADDRESS_FAILURE_LIMIT
    codes = [_sign_in(client, f"user{i}", "Summer2024!", SPRAYER).status_code for i in range(limit)]
    # The failure that reaches the limit is answered with the lockout already.
    assert codes == [200] * (limit - 1) + [429]
    response = _sign_in(client, "alice", password, SPRAYER)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert not _signed_in(client)
    # The address is locked, not alice: she signs in from hers.
    assert _sign_in(client, "alice", password, OWNER_ADDRESS).status_code == 302
    assert _signed_in(client)


def test_failing_against_a_name_does_not_lock_its_owner_out_elsewhere(
    db: Any, client: Any, alice: Any, password: str, settings: Any
) -> None:
    for _ in range(settings.AXES_ADDRESS_FAILURE_LIMIT * 2):
        _sign_in(client, "alice", "wrong", SPRAYER)
    assert _sign_in(client, "alice", password, SPRAYER).status_code == 429
    response = _sign_in(client, "alice", password, OWNER_ADDRESS)
    assert response.status_code == 302
    assert _signed_in(client)


def test_a_few_typos_from_a_shared_address_lock_only_that_pair(
    db: Any, client: Any, alice: Any, bob: Any, password: str, settings: Any
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "alice", "typo", OWNER_ADDRESS)
    assert _sign_in(client, "alice", password, OWNER_ADDRESS).status_code == 429
    # A colleague behind the same address is not affected.
    assert _sign_in(client, "bob", password, OWNER_ADDRESS).status_code == 302


def test_signing_in_to_an_own_account_does_not_reset_the_address_count(
    db: Any, client: Any, password: str, settings: Any
) -> None:
    UserFactory(username="mallory")
    UserFactory(username="victim")
    for i in range(settings.AXES_ADDRESS_FAILURE_LIMIT - 1):
        _sign_in(client, f"user{i}", "guess", SPRAYER)
    assert _sign_in(client, "mallory", password, SPRAYER).status_code == 302
    client.logout()
    _sign_in(client, "user-last", "guess", SPRAYER)
    assert _sign_in(client, "victim", password, SPRAYER).status_code == 429
