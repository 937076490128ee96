"""Destructive actions ask first: htmx asks in place, and a confirmation page
does it without JavaScript. Removing a member; stopping and deleting a workspace."""

from __future__ import annotations

from typing import Any

import pytest

from projects.models import Membership
from tests.portal.test_stages import ran_a_notebook
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

REMOVE_BOB = "/projects/churn/members/bob/remove/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_project_page_asks_before_removing_a_member(
    project: Any, client_for: Any, alice: Any
) -> None:
    body = client_for(alice).get("/projects/churn/").content.decode()
    assert f'href="{REMOVE_BOB}" hx-post="{REMOVE_BOB}" hx-confirm="Remove bob from Churn?"' in body


def test_confirmation_page_without_javascript(project: Any, client_for: Any, alice: Any) -> None:
    client = client_for(alice)
    page = client.get(REMOVE_BOB)
    body = page.content.decode()
    assert page.status_code == 200 and "Remove bob from Churn?" in body
    assert f'<form method="post" action="{REMOVE_BOB}"' in body
    assert Membership.objects.filter(project=project, user__username="bob").exists()
    done = client.post(REMOVE_BOB)
    assert done.status_code == 302 and done["Location"] == "/projects/churn/"
    assert not Membership.objects.filter(project=project, user__username="bob").exists()


def test_htmx_removal_redirects_the_page(project: Any, client_for: Any, alice: Any) -> None:
    response = client_for(alice).post(REMOVE_BOB, **HTMX)
    assert response.status_code == 204 and response["HX-Redirect"] == "/projects/churn/"
    assert not Membership.objects.filter(project=project, user__username="bob").exists()


@pytest.mark.parametrize(("who", "status"), [("bob", 403), ("carol", 403), ("charlie", 404)])
def test_only_a_lead_sees_the_confirmation(
    project: Any, client_for: Any, request: Any, who: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert client.get(REMOVE_BOB).status_code == status
    assert client.post(REMOVE_BOB).status_code == status
    assert Membership.objects.filter(project=project, user__username="bob").exists()


@pytest.mark.parametrize("action", ["stop", "delete"])
def test_workspace_stop_and_delete_ask_first(
    project: Any, client_for: Any, bob: Any, action: str
) -> None:
    ran_a_notebook(project, bob)
    ws = Workspace.objects.get()
    url = f"/projects/churn/workspaces/{ws.pk}/{action}/"
    client = client_for(bob)
    detail = client.get(f"/projects/churn/workspaces/{ws.pk}/").content.decode()
    assert f'href="{url}" hx-post="{url}" hx-confirm=' in detail
    page = client.get(url)
    assert (
        page.status_code == 200 and f'<form method="post" action="{url}"' in page.content.decode()
    )
    ws.refresh_from_db()
    assert ws.state == "running"  # asking changed nothing
    response = client.post(url, **HTMX)
    assert response["HX-Redirect"] == f"/projects/churn/workspaces/{ws.pk}/"
    ws.refresh_from_db()
    assert ws.state == ("stopping" if action == "stop" else "deleting")


def test_workspace_confirmation_is_404_for_outsiders(
    project: Any, client_for: Any, bob: Any, charlie: Any
) -> None:
    ran_a_notebook(project, bob)
    ws = Workspace.objects.get()
    assert client_for(charlie).get(f"/projects/churn/workspaces/{ws.pk}/delete/").status_code == 404
    assert client_for(charlie).get(f"/projects/churn/workspaces/{ws.pk}/resize/").status_code == 404
    assert client_for(bob).get(f"/projects/churn/workspaces/{ws.pk}/resize/").status_code == 405
