"""The tracking server's access decisions and artifact path rules, word for
word and at their edges, through Django's test client (no live server): the
tests the mutation gate runs for ``experiments.permissions``,
``experiments.api._user`` and ``experiments.artifacts``."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import PersonalAccessToken
from experiments.artifacts import MAX_PATH, ArtifactStore, artifact_path_of, clean_path
from experiments.errors import MlflowError
from experiments.models import Experiment
from experiments.permissions import get_tracking_project_for_user
from projects.tokens import project_token_issue
from tests.experiments.conftest import token_for

pytestmark = pytest.mark.django_db

SEARCH = "api/2.0/mlflow/experiments/search"


def _call(
    slug: str, authorization: str | None, endpoint: str = SEARCH, body: dict | None = None
) -> tuple[int, dict[str, Any]]:
    headers: dict[str, Any] = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    client = Client()
    if body is None:
        response = client.get(f"/mlflow/{slug}/{endpoint}", {"max_results": 5}, **headers)
    else:
        response = client.post(
            f"/mlflow/{slug}/{endpoint}",
            json.dumps(body),
            content_type="application/json",
            **headers,
        )
    return response.status_code, response.json()


# --- who is asking ----------------------------------------------------------


def test_a_personal_token_is_accepted_with_any_case_of_bearer_and_spaces(
    project: Any, bob: Any
) -> None:
    raw = token_for(bob)
    for header in (f"Bearer {raw}", f"bearer {raw}", f"BEARER  {raw} "):
        status, body = _call(project.slug, header)
        assert status == 200, (header, body)
        assert "experiments" in body or body == {}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic eDp5", "Token abc", "bearer"],
)
def test_no_bearer_token_asks_for_one(project: Any, header: str | None) -> None:
    status, body = _call(project.slug, header)
    assert status == 401
    assert body == {
        "error_code": "UNAUTHENTICATED",
        "message": "Authenticate with a personal access token (MLFLOW_TRACKING_TOKEN).",
    }


def test_an_unknown_or_revoked_personal_token_is_refused(project: Any, bob: Any) -> None:
    status, body = _call(project.slug, "Bearer sgp_not-a-token")
    assert (status, body) == (
        401,
        {"error_code": "UNAUTHENTICATED", "message": "Invalid or revoked token."},
    )
    raw = token_for(bob)
    PersonalAccessToken.objects.filter(user=bob).update(revoked_at=timezone.now())
    assert _call(project.slug, f"Bearer {raw}")[0] == 401


def test_an_expired_personal_token_says_when_it_expired(project: Any, bob: Any) -> None:
    raw = token_for(bob)
    PersonalAccessToken.objects.filter(user=bob).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    status, body = _call(project.slug, f"Bearer {raw}")
    assert status == 401
    assert body["error_code"] == "UNAUTHENTICATED"
    assert body["message"].startswith("Token expired on ")
    assert body["message"].endswith(" UTC; create a new one on your profile page.")


def test_a_project_token_works_for_its_project_only(project: Any, bob: Any) -> None:
    raw = project_token_issue(project=project, user=bob, purpose="workspace:1")
    assert _call(project.slug, f"Bearer {raw}")[0] == 200
    assert _call(project.slug, f"bearer  {raw} ")[0] == 200
    status, body = _call("another-project", f"Bearer {raw}")
    assert (status, body) == (
        401,
        {
            "error_code": "UNAUTHENTICATED",
            "message": "Invalid, expired or revoked token for this project.",
        },
    )
    # A personal token that happens to look like a project token is no token.
    assert _call(project.slug, "Bearer sgt_unknown")[0] == 401


def test_a_project_token_acts_as_its_user(project: Any, bob: Any, carol: Any) -> None:
    bobs = project_token_issue(project=project, user=bob, purpose="job:1")
    status, body = _call(
        project.slug, f"Bearer {bobs}", "api/2.0/mlflow/experiments/create", {"name": "e"}
    )
    assert status == 200, body
    assert Experiment.objects.get(name="e").project == project
    carols = project_token_issue(project=project, user=carol, purpose="job:2")
    status, body = _call(
        project.slug, f"Bearer {carols}", "api/2.0/mlflow/experiments/create", {"name": "f"}
    )
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")


# --- what they may do --------------------------------------------------------


def test_outsiders_members_and_read_only_members(
    project: Any, bob: Any, carol: Any, charlie: Any
) -> None:
    with pytest.raises(MlflowError) as outsider:
        get_tracking_project_for_user(charlie, project.slug)
    assert outsider.value.code == "RESOURCE_DOES_NOT_EXIST"
    assert outsider.value.message == f"Project '{project.slug}' does not exist."
    assert outsider.value.status == 404
    with pytest.raises(MlflowError) as missing:
        get_tracking_project_for_user(bob, "no-such-project")
    assert missing.value.code == "RESOURCE_DOES_NOT_EXIST"

    assert get_tracking_project_for_user(bob, project.slug) == project
    assert get_tracking_project_for_user(bob, project.slug, write=True) == project
    assert get_tracking_project_for_user(carol, project.slug) == project
    with pytest.raises(MlflowError) as read_only:
        get_tracking_project_for_user(carol, project.slug, write=True)
    assert read_only.value.code == "PERMISSION_DENIED"
    assert read_only.value.message == "Your role in this project is read-only."
    assert read_only.value.status == 403


def test_outsiders_cannot_tell_endpoints_apart(project: Any, charlie: Any) -> None:
    header = f"Bearer {token_for(charlie)}"
    for endpoint in (SEARCH, "api/2.0/mlflow/no/such/endpoint"):
        status, body = _call(project.slug, header, endpoint)
        assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), endpoint
    client = Client()
    listing = client.get(
        f"/mlflow/{project.slug}/api/2.0/mlflow-artifacts/artifacts",
        {"path": ""},
        HTTP_AUTHORIZATION=header,
    )
    assert listing.status_code == 404
    post = client.post(
        f"/mlflow/{project.slug}/api/2.0/mlflow-artifacts/artifacts/a.txt",
        b"x",
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=header,
    )
    assert post.status_code == 404


def test_read_only_members_read_artifacts_and_may_not_write_them(
    project: Any, bob: Any, carol: Any
) -> None:
    client = Client()
    url = f"/mlflow/{project.slug}/api/2.0/mlflow-artifacts/artifacts/1/a.txt"
    put = client.put(
        url,
        b"hello",
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=f"Bearer {token_for(bob)}",
    )
    assert put.status_code == 200, put.content
    carol_header = f"Bearer {token_for(carol)}"
    got = client.get(url, HTTP_AUTHORIZATION=carol_header)
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == b"hello"  # type: ignore[attr-defined]
    for method in (client.put, client.delete):
        refused = method(
            url, b"x", content_type="application/octet-stream", HTTP_AUTHORIZATION=carol_header
        )
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
    members_post = client.post(
        url, b"x", content_type="application/octet-stream", HTTP_AUTHORIZATION=carol_header
    )
    assert members_post.status_code == 404
    assert members_post.json()["error_code"] == "ENDPOINT_NOT_FOUND"


# --- artifact paths ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", "a"),
        ("a/b.txt", "a/b.txt"),
        ("a/", "a"),
        ("a//b", "a/b"),
        ("a b/c d", "a b/c d"),
        ("model/MLmodel", "model/MLmodel"),
        ("a/b:c", "a/b:c"),
        ("Xa/bX/", "Xa/bX"),
        ("..a/b..", "..a/b.."),
        ("x" * MAX_PATH, "x" * MAX_PATH),
    ],
)
def test_clean_paths_pass(path: str, expected: str) -> None:
    assert clean_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/",
        "..",
        "a/../b",
        "a/./b",
        ".",
        "a\\b",
        "a%2e%2e/b",
        "a\x00b",
        "a\x1fb",
        "a\nb",
        "c:/x",
        "s3:x/y",
        "",
        "//",
    ],
)
def test_escaping_paths_are_refused_word_for_word(path: str) -> None:
    with pytest.raises(MlflowError) as refused:
        clean_path(path)
    assert refused.value.code == "INVALID_PARAMETER_VALUE"
    assert refused.value.message == f"Invalid artifact path: '{path}'"


def test_path_length_and_empty_paths() -> None:
    with pytest.raises(MlflowError) as too_long:
        clean_path("x" * (MAX_PATH + 1))
    assert too_long.value.message == f"Artifact path is longer than {MAX_PATH} characters."
    assert MAX_PATH == 1000
    assert clean_path("", allow_empty=True) == ""
    assert clean_path("a/", allow_empty=True) == "a"
    with pytest.raises(MlflowError):
        clean_path("/", allow_empty=True)
    with pytest.raises(MlflowError):
        clean_path("..", allow_empty=True)


@pytest.fixture
def store(storage: Path, project: Any) -> ArtifactStore:
    return ArtifactStore(project.pk)


def test_the_store_resolves_under_the_project_root(store: ArtifactStore, project: Any) -> None:
    assert store.root.endswith(f"/mlflow-artifacts/{project.pk}")
    assert store._full("") == store.root
    assert store._full("a/b") == f"{store.root}/a/b"


def test_symlinks_out_of_the_root_are_refused(
    store: ArtifactStore, storage: Path, project: Any
) -> None:
    root = Path(store.root)
    root.mkdir(parents=True)
    outside = storage / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside)
    # A sibling whose name starts with the root's: outside, though a prefix match.
    sibling = Path(f"{store.root}0")
    sibling.mkdir()
    (root / "sibling").symlink_to(sibling)
    (root / "inside").mkdir()
    (root / "alias").symlink_to(root / "inside")
    for rel in ("link", "link/secret.txt", "sibling", "sibling/x"):
        with pytest.raises(MlflowError) as refused:
            store._full(rel)
        assert refused.value.message == f"Invalid artifact path: '{rel}'"
    assert store._full("alias/x") == f"{store.root}/alias/x"  # a link that stays inside
    assert os.path.realpath(store._full("inside")) == str(root / "inside")
    with pytest.raises(MlflowError):
        store.open("link/secret.txt")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mlflow-artifacts:/1", "1"),
        ("mlflow-artifacts:/1/abc/artifacts/model", "1/abc/artifacts/model"),
        ("mlflow-artifacts:1/x", "1/x"),
        ("mlflow-artifacts:/", ""),
        ("mlflow-artifacts://other-host/1", None),
        ("s3://bucket/1", None),
        ("/var/lib/x", None),
    ],
)
def test_artifact_uris_name_a_path_in_the_project_store(uri: str, expected: str | None) -> None:
    assert artifact_path_of(uri) == expected


@pytest.mark.parametrize(
    "uri", ["mlflow-artifacts:/../x", "mlflow-artifacts://", "mlflow-artifacts:/1/%2e%2e"]
)
def test_artifact_uris_that_escape_are_refused(uri: str) -> None:
    if uri == "mlflow-artifacts://":
        assert artifact_path_of(uri) is None
        return
    with pytest.raises(MlflowError):
        artifact_path_of(uri)


def test_an_experiment_may_name_a_location_in_its_project_s_store(project: Any, bob: Any) -> None:
    status, body = _call(
        project.slug,
        f"Bearer {token_for(bob)}",
        "api/2.0/mlflow/experiments/create",
        {"name": "placed", "artifact_location": "mlflow-artifacts:/placed"},
    )
    assert status == 200, body
    assert Experiment.objects.get(name="placed").artifact_location == "mlflow-artifacts:/placed"
    status, body = _call(
        project.slug,
        f"Bearer {token_for(bob)}",
        "api/2.0/mlflow/experiments/create",
        {"name": "elsewhere", "artifact_location": "s3://bucket/x"},
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "keep their artifacts under 'mlflow-artifacts:/'" in body["message"]
