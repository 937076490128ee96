"""Inputs that used to end in a 500 or an HTML page: every API error is a JSON
4xx, and text PostgreSQL cannot store is refused at the door."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import get_resolver

from projects.models import Project
from web.parsers import MAX_JSON_DEPTH


@pytest.fixture
def web(client: Client, alice: Any) -> Client:
    client.force_login(alice)
    return client


def post_json(client: Client, url: str, body: str) -> Any:
    return client.post(url, data=body, content_type="application/json")


def test_json_nested_a_thousand_levels_deep_is_a_json_400(web: Client) -> None:
    response = post_json(web, "/api/projects/", "[" * 1000 + "]" * 1000)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "nested" in response.json()["detail"]


def test_json_just_past_the_depth_limit_is_refused_and_at_it_is_read(web: Client) -> None:
    def nested(depth: int) -> Any:
        value: Any = "x"
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    # The outer object is level 1, so its value nests MAX_JSON_DEPTH more.
    too_deep = {"name": "P", "slug": "p", "description": nested(MAX_JSON_DEPTH + 1)}
    response = post_json(web, "/api/projects/", json.dumps(too_deep))
    assert response.status_code == 400
    assert f"deeper than {MAX_JSON_DEPTH}" in response.json()["detail"]
    # One level less gets past the parser, to the serializer (a string is wanted).
    fits = {"name": "P", "slug": "p", "description": nested(MAX_JSON_DEPTH)}
    response = post_json(web, "/api/projects/", json.dumps(fits))
    assert response.status_code == 400
    assert "description" in response.json()


def test_a_10_mb_json_body_is_a_json_413(web: Client) -> None:
    response = post_json(web, "/api/projects/", json.dumps({"name": "a" * 10_000_000}))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "a\\u0000b", "slug": "ab"}',
        '{"name": "ab", "slug": "ab", "x": {"k\\u0000": 1}}',
        '{"name": "a\\ud800b", "slug": "ab"}',
        '{"name": "ab", "slug": "ab", "x": [1e999]}',
    ],
    ids=["nul-value", "nul-key", "lone-surrogate", "infinity"],
)
def test_json_the_database_cannot_store_is_a_400(web: Client, body: str) -> None:
    response = post_json(web, "/api/projects/", body)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert not Project.objects.exists()


def test_a_form_encoded_api_body_with_nul_is_a_400(web: Client) -> None:
    response = web.post("/api/projects/", {"name": "a\x00b", "slug": "ab"})
    assert response.status_code == 400
    assert "Null characters" in response.json()["detail"]


def test_a_multipart_api_body_with_nul_is_a_400(web: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    # Django drops unprintable characters from file names itself; fields keep them.
    upload = SimpleUploadedFile("a.csv", b"a\n1\n", content_type="text/csv")
    body = {"name": "ab", "slug": "ab", "description": "x\x00", "file": upload}
    response = web.post("/api/projects/", body)
    assert response.status_code == 400
    assert "Null characters" in response.json()["detail"]
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["/api/projects/churn/members/a%00b/", "/api/audit/?actor=a%00b", "/api/projects/?x%00=1"],
)
def test_nul_in_the_address_is_a_json_400(web: Client, project: Any, url: str) -> None:
    response = web.get(url)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_nul_in_a_page_address_is_a_400(web: Client, project: Any) -> None:
    response = web.get("/audit/?actor=a%00b")
    assert response.status_code == 400


def test_an_html_form_refuses_nul(web: Client, project: Any) -> None:
    response = web.post("/projects/new/", {"name": "a\x00b", "slug": "ab"})
    assert response.status_code == 200  # the form again, with its error
    assert b"Null characters are not allowed" in response.content
    assert not Project.objects.filter(slug="ab").exists()


def test_an_unknown_api_path_is_a_json_404(web: Client) -> None:
    response = web.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_wrong_method_is_a_json_405(web: Client) -> None:
    response = web.delete("/api/projects/")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"


def test_a_page_outside_the_api_keeps_the_html_404(web: Client) -> None:
    response = web.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("code", [400, 403, 404, 500])
def test_the_error_handlers_answer_json_under_api_and_html_elsewhere(rf: Any, code: int) -> None:
    from django.core.exceptions import BadRequest

    handler = get_resolver().resolve_error_handler(code)
    args = () if code == 500 else (BadRequest("x"),)
    api = handler(rf.get("/api/anything/"), *args)
    assert api.status_code == code
    assert api["Content-Type"] == "application/json"
    assert "detail" in json.loads(api.content)
    page = handler(rf.get("/projects/"), *args)
    assert page.status_code == code
    assert page["Content-Type"].startswith("text/html")
