"""Error pages in the portal's layout; errors under /api/ stay JSON."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from web import errors

pytestmark = pytest.mark.django_db


def test_not_found_is_a_page_of_the_portal_with_its_navigation(client_for: Any, bob: Any) -> None:
    response = client_for(bob).get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body and "/no/such/page/" in body
    assert 'href="/approvals/"' in body and 'href="/notifications/"' in body  # the nav
    assert 'rel="icon"' in body


def test_forbidden_says_why_in_the_layout(client_for: Any, bob: Any) -> None:
    response = client_for(bob).get("/costs/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "You may not do this" in body and "The cost overview is for platform admins." in body
    assert 'href="/approvals/"' in body


def test_api_errors_stay_json(client_for: Any, bob: Any) -> None:
    response = client_for(bob).get("/api/no/such/thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_the_server_error_page_needs_no_request_context(client: Any) -> None:
    request = RequestFactory().get("/projects/")
    response = errors.server_error(request)
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body and 'href="/"' in body
    api = errors.server_error(RequestFactory().get("/api/projects/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"


def test_the_favicon_is_a_static_file() -> None:
    from django.contrib.staticfiles import finders

    found = finders.find("favicon.svg")
    assert found and "<svg" in open(found).read()  # noqa: PTH123, SIM115


def test_tracking_server_errors_have_mlflow_s_shape(client: Any, project: Any) -> None:
    """What the mlflow client reads: error_code and message, whatever refused
    the request (middleware, routing, a handler)."""
    base = f"/mlflow/{project.slug}"
    nul = client.get(f"{base}/api/2.0/mlflow/runs/get", {"run_id": "a\x00b"})
    assert nul.status_code == 400
    assert nul.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Bad address - Null characters are not allowed.",
    }
    unknown = client.get(f"{base}/not/an/api/")
    assert unknown.status_code == 404
    assert unknown.json() == {"error_code": "ENDPOINT_NOT_FOUND", "message": "No such endpoint."}
    crash = errors.server_error(RequestFactory().get(f"{base}/api/2.0/mlflow/runs/get"))
    assert crash.status_code == 500
    assert crash["Content-Type"] == "application/json"
    denied = errors.permission_denied(RequestFactory().get(f"{base}/x"), Exception())
    assert denied.status_code == 403
    assert b'"error_code": "PERMISSION_DENIED"' in denied.content
    bad = errors.bad_request(RequestFactory().get(f"{base}/x"), Exception())
    assert bad.status_code == 400 and b'"error_code": "BAD_REQUEST"' in bad.content
