"""Single sign-on with Entra ID records the user's object id (the ID token's
``oid``), which Azure ML assigns compute instances to.

The backend is mozilla-django-oidc's, with our overrides; its userinfo
request goes to a real HTTP server on this machine answering like Microsoft
Graph's ``/oidc/userinfo`` (which carries no ``oid``: only the ID token does).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from accounts.oidc import EntraIDBackend, entra_object_id
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db
TENANT = "11111111-1111-1111-1111-111111111111"
OID = "22222222-2222-2222-2222-222222222222"


class Userinfo(BaseHTTPRequestHandler):
    claims: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps(self.claims).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def graph(settings: Any) -> Iterator[type[Userinfo]]:
    """A userinfo endpoint, and the OIDC settings that point at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Userinfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.OIDC_OP_USER_ENDPOINT = f"http://127.0.0.1:{server.server_port}/oidc/userinfo"
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
    settings.OIDC_OP_JWKS_ENDPOINT = "http://127.0.0.1:9/keys"
    settings.OIDC_RP_CLIENT_ID = "stagegate"
    settings.OIDC_RP_CLIENT_SECRET = "not-a-secret"
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_RP_SCOPES = "openid email profile"
    settings.AZURE_TENANT_ID = TENANT
    Userinfo.claims = {
        "sub": "graph-sub",
        "email": "erin@example.com",
        "given_name": "Erin",
        "family_name": "Ng",
    }
    try:
        yield Userinfo
    finally:
        server.shutdown()
        server.server_close()


def sign_in(payload: dict[str, Any]) -> Any:
    """What the backend does after it verified the ID token (its ``payload``)."""
    return EntraIDBackend().get_or_create_user("access-token", "id-token", payload)


def test_a_new_user_gets_the_object_id_of_the_id_token(graph: type[Userinfo]) -> None:
    user = sign_in({"oid": OID.upper(), "tid": TENANT, "sub": "id-sub"})
    assert user.username == "erin" and user.email == "erin@example.com"
    assert User.objects.get(pk=user.pk).entra_object_id == OID  # a GUID, lower-case
    event = AuditEvent.objects.get(action="account.entra_object_id_set")
    assert event.object_id == str(user.pk)
    assert event.payload == {"before": "", "after": OID, "via": "single sign-on"}


def test_an_existing_user_gets_it_at_the_next_sign_in_and_keeps_it_current(
    graph: type[Userinfo],
) -> None:
    user = User.objects.create_user("erin", email="Erin@example.com")
    assert sign_in({"oid": OID, "tid": TENANT}).pk == user.pk
    user.refresh_from_db()
    assert user.entra_object_id == OID
    sign_in({"oid": OID, "tid": TENANT})  # unchanged: nothing written, nothing audited
    assert AuditEvent.objects.filter(action="account.entra_object_id_set").count() == 1
    other = "33333333-3333-3333-3333-333333333333"
    sign_in({"oid": other, "tid": TENANT})
    user.refresh_from_db()
    assert user.entra_object_id == other
    last = (
        AuditEvent.objects.filter(action="account.entra_object_id_set").order_by("sequence").last()
    )
    assert last is not None and last.payload["before"] == OID


def test_an_object_id_from_another_tenant_is_not_kept(graph: type[Userinfo]) -> None:
    user = sign_in({"oid": OID, "tid": "99999999-9999-9999-9999-999999999999"})
    assert User.objects.get(pk=user.pk).entra_object_id == ""
    assert not AuditEvent.objects.filter(action="account.entra_object_id_set").exists()


def test_which_claims_make_an_object_id(settings: Any) -> None:
    settings.AZURE_TENANT_ID = TENANT
    assert entra_object_id({"oid": OID, "tid": TENANT.upper()}) == OID
    assert entra_object_id({"oid": OID}) == ""  # no tenant: cannot tell it is ours
    assert entra_object_id({"oid": "not-a-guid", "tid": TENANT}) == ""
    assert entra_object_id({"tid": TENANT}) == ""
    settings.AZURE_TENANT_ID = ""  # no Azure tenant configured: any tenant's id is kept
    assert entra_object_id({"oid": OID}) == OID


def test_an_admin_records_it_by_command(alice: Any) -> None:
    out = io.StringIO()
    call_command("set_entra_object_id", "alice", OID.upper(), stdout=out)
    assert out.getvalue().strip() == f"alice: Entra ID object id now {OID}"
    alice.refresh_from_db()
    assert alice.entra_object_id == OID
    event = AuditEvent.objects.get(action="account.entra_object_id_set")
    assert event.actor is None and event.payload["via"] == "command"
    with pytest.raises(CommandError, match="not an Entra ID object id"):
        call_command("set_entra_object_id", "alice", "alice@example.com")
    with pytest.raises(CommandError, match="No user named"):
        call_command("set_entra_object_id", "nobody", OID)
    call_command("set_entra_object_id", "alice", "", stdout=io.StringIO())
    alice.refresh_from_db()
    assert alice.entra_object_id == ""
