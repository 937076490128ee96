"""The charter gate before compute: a new workspace request needs a signed-off charter.

Refused in the service (nothing written), answered 409 with the reason and the
charter's address in the API, and shown with a link to the charter on the page.
"""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from charter.gates import CharterNotSignedOff
from charter.services import charter_draft_save, charter_submit
from governance.services import approval_decide
from tests.charter.test_charter import GOOD
from workspaces import services
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

API = "/api/projects/churn/workspaces/"
PAGE = "/projects/churn/workspaces/"
CHARTER = "/projects/churn/charter/"


@pytest.mark.parametrize("kind", ["notebook", "cluster"])
def test_service_refuses_without_a_signed_charter(
    project_unsigned: Any, bob: Any, small: Any, kind: str
) -> None:
    with pytest.raises(CharterNotSignedOff) as refused:
        services.workspace_request(
            actor=bob, project=project_unsigned, name="explore", size=small, kind=kind
        )
    assert refused.value.charter_url == CHARTER
    assert "needs a signed-off charter" in str(refused.value)
    assert not Workspace.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="workspace.").exists()


def test_a_submitted_but_undecided_charter_is_not_enough(
    project_unsigned: Any, alice: Any, bob: Any, small: Any
) -> None:
    charter_draft_save(actor=alice, project=project_unsigned, values=GOOD)
    charter_submit(actor=alice, project=project_unsigned)
    with pytest.raises(CharterNotSignedOff):
        services.workspace_request(actor=bob, project=project_unsigned, name="x", size=small)


def test_sign_off_opens_the_gate_and_a_later_draft_does_not_close_it(
    project_unsigned: Any, alice: Any, bob: Any, dave: Any, small: Any
) -> None:
    charter_draft_save(actor=alice, project=project_unsigned, values=GOOD)
    approval = charter_submit(actor=alice, project=project_unsigned)
    approval_decide(actor=dave, approval_id=approval.pk, approve=True)
    # A draft of v2 is open, but v1 stays signed off: work goes on.
    charter_draft_save(actor=alice, project=project_unsigned, values={"scope": "EU"})
    ws = services.workspace_request(actor=bob, project=project_unsigned, name="x", size=small)
    assert ws.pk is not None


def test_api_answers_409_with_the_reason_and_the_charter(
    project_unsigned: Any, api_for: Any, bob: Any, small: Any
) -> None:
    response = api_for(bob).post(API, {"name": "explore", "size": small.name}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "charter_not_signed_off"
    assert body["charter_url"] == CHARTER
    assert body["detail"].startswith("Requesting a notebook workspace needs a signed-off charter")
    assert not Workspace.objects.exists()


def test_api_bad_input_is_still_400_before_the_gate(
    project_unsigned: Any, api_for: Any, bob: Any
) -> None:
    response = api_for(bob).post(API, {"name": "", "size": "nope"}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(("who", "status"), [("carol", 403), ("charlie", 404)])
def test_api_permission_comes_before_the_gate(
    project_unsigned: Any, api_for: Any, request: Any, small: Any, who: str, status: int
) -> None:
    api = api_for(request.getfixturevalue(who))
    response = api.post(API, {"name": "explore", "size": small.name}, format="json")
    assert response.status_code == status


def test_schema_documents_the_409(client: Any, db: Any) -> None:
    schema = client.get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/projects/{slug}/workspaces/"]["post"]
    assert "409" in post["responses"]
    ref = post["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/GateRefusalOutput")
    assert "charter_url" in schema["components"]["schemas"]["GateRefusalOutput"]["properties"]


def test_page_explains_before_the_form_is_filled(
    project_unsigned: Any, client_for: Any, bob: Any
) -> None:
    body = client_for(bob).get(PAGE).content.decode()
    assert 'id="gate-notice"' in body
    assert "Requesting compute needs a signed-off charter" in body
    assert f'href="{CHARTER}"' in body


def test_page_has_no_notice_once_signed(project: Any, client_for: Any, bob: Any) -> None:
    body = client_for(bob).get(PAGE).content.decode()
    assert 'id="gate-notice"' not in body


def test_page_refusal_says_why_and_links_to_the_charter(
    project_unsigned: Any, client_for: Any, bob: Any, small: Any
) -> None:
    response = client_for(bob).post(
        PAGE, {"name": "explore", "kind": "notebook", "size": small.pk, "idle_shutdown_minutes": 60}
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert 'id="gate-refusal"' in body
    assert "Requesting a notebook workspace needs a signed-off charter" in body
    assert f'<a href="{CHARTER}">Go to the charter</a>' in body
    assert not Workspace.objects.exists()
