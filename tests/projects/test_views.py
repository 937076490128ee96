"""The project and charter pages, as owner, member, approver, read-only member and outsider."""

from __future__ import annotations

from typing import Any

import pytest

from charter.models import CharterStatus, CharterVersion
from charter.services import charter_draft_save, charter_submit
from governance.models import ApprovalRequest
from governance.services import approval_decide
from tests.charter.test_charter import GOOD


@pytest.fixture
def project(project_unsigned: Any) -> Any:
    """These tests write the charter themselves: the project starts without one."""
    return project_unsigned


# The charter as the HTML form posts it.
FORM = {
    **{k: v for k, v in GOOD.items() if k != "data_sources"},
    "threshold": "0.8",
    "data_sources": "CRM export\n\n  billing database  \n",
}
EVERYONE = [
    ("alice", 200),
    ("bob", 200),
    ("carol", 200),
    ("dave", 200),
    ("charlie", 404),
    ("admin_user", 200),
]


def charter_url(project: Any, rest: str = "") -> str:
    return f"/projects/{project.slug}/charter/{rest}"


def signed_off(project: Any, alice: Any, dave: Any) -> CharterVersion:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    request = charter_submit(actor=alice, project=project)
    approval_decide(actor=dave, approval_id=request.pk, approve=True)
    return CharterVersion.objects.get(project=project, number=1)


# --- Project page -------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), EVERYONE)
def test_project_page_as_everyone(
    project: Any, client_for: Any, request: Any, who: str, status: int
) -> None:
    response = client_for(request.getfixturevalue(who)).get(f"/projects/{project.slug}/")
    assert response.status_code == status
    if status == 200:
        body = response.content.decode()
        for stage in ("Charter", "Data", "Workspaces", "Experiments", "Deployment"):
            assert f". {stage}</span>" in body
        assert "Not started" in body


def test_project_page_follows_the_charter_gate(
    project: Any, client_for: Any, alice: Any, dave: Any
) -> None:
    client = client_for(alice)
    url = f"/projects/{project.slug}/"

    charter_draft_save(actor=alice, project=project, values=GOOD)
    body = client.get(url).content.decode()
    assert "Draft v1" in body and "Not yet submitted" in body
    assert "Classification (which category?)" in body
    assert "churned" in body
    assert "ROC AUC ≥ 0.8" in body and "Higher is better" in body
    assert f'href="{charter_url(project)}"' in body

    request = charter_submit(actor=alice, project=project)
    body = client.get(url).content.decode()
    assert "Awaiting sign-off of v1" in body and "submitted by alice" in body
    assert f'href="/approvals/{request.pk}/">See the sign-off request' in body
    charter_body = client.get(charter_url(project)).content.decode()
    assert f'href="/approvals/{request.pk}/">See the sign-off request' in charter_body

    approval_decide(actor=dave, approval_id=request.pk, approve=True)
    response = client.get(url)
    body = response.content.decode()
    assert "Signed off v1" in body and "by dave on" in body
    assert "See the sign-off request" not in body
    assert response.context["progress"][0]["state"] == "done"
    assert response.context["progress"][1]["state"] == "current"

    # An edit after sign-off: back to the charter stage, v2 needs a new sign-off.
    project.refresh_from_db()  # the service reads the stage from the instance it is given
    charter_draft_save(actor=alice, project=project, values={"threshold": 0.85})
    response = client.get(url)
    body = response.content.decode()
    assert "Draft v2" in body and "Needs a new sign-off" in body
    assert "v1 was signed off by dave" in body
    # v1 stays signed off: the stages that follow go on while v2 waits for its sign-off.
    assert response.context["progress"][0]["state"] == "done"
    assert response.context["progress"][1]["state"] == "current"


# --- Charter page --------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), EVERYONE)
def test_charter_page_as_everyone(
    project: Any, client_for: Any, alice: Any, request: Any, who: str, status: int
) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    response = client_for(request.getfixturevalue(who)).get(charter_url(project))
    assert response.status_code == status
    if status != 200:
        return
    body = response.content.decode()
    assert "v1 · Draft" in body
    may_write = who in ("alice", "bob")
    assert ("Save draft" in body) == may_write
    assert ("Submit for sign-off" in body) == may_write
    # Readers see the charter as text.
    assert "Consumer subscriptions in the EU." in body
    if not may_write:
        assert "ROC AUC (roc_auc)" in body
        assert "CRM export<br>billing database" in body


def test_charter_page_without_a_charter(project: Any, client_for: Any, alice: Any) -> None:
    body = client_for(alice).get(charter_url(project)).content.decode()
    assert "no charter yet" in body and "Save draft" in body
    assert "Submit for sign-off" not in body


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 302),
        ("bob", 302),
        ("carol", 403),
        ("dave", 403),
        ("charlie", 404),
        ("admin_user", 403),
    ],
)
def test_who_may_save_the_charter(
    project: Any, client_for: Any, request: Any, who: str, status: int
) -> None:
    response = client_for(request.getfixturevalue(who)).post(charter_url(project), FORM)
    assert response.status_code == status
    assert CharterVersion.objects.filter(project=project).exists() == (status == 302)


def test_saving_the_form_writes_the_draft(project: Any, client_for: Any, bob: Any) -> None:
    client = client_for(bob)
    response = client.post(charter_url(project), FORM, follow=True)
    assert response.redirect_chain == [(charter_url(project), 302)]
    assert "Charter draft v1 saved." in response.content.decode()
    draft = CharterVersion.objects.get(project=project)
    assert draft.data_sources == ["CRM export", "billing database"]
    assert draft.threshold == 0.8 and draft.direction == "higher"
    assert str(draft.cost_ceiling) == "1500.00"
    # The form shows what was saved.
    form = response.context["form"]
    assert form.initial["data_sources"] == "CRM export\nbilling database"
    assert form.initial["threshold"] == "0.8"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"question_type": "regression", "success_metric": "accuracy"},
            "success_metric",
            "Accuracy does not measure regression; choose one of: rmse, mae, mape, r2.",
        ),
        (
            {"success_metric": "accuracy", "threshold": "1.5"},
            "threshold",
            "Accuracy lies in [0, 1]",
        ),
        (
            {"question_type": "clustering", "success_metric": "silhouette", "threshold": "-2"},
            "threshold",
            "Silhouette score lies in [-1, 1]; -2 is outside it.",
        ),
        ({"threshold": "lots"}, "threshold", "Enter a number."),
        ({"cost_ceiling": "-5"}, "cost_ceiling", "greater than or equal to 0"),
        ({"question_type": "astrology"}, "question_type", "Select a valid choice."),
    ],
)
def test_form_shows_validation_messages_on_their_fields(
    project: Any, client_for: Any, bob: Any, changes: dict[str, str], field: str, message: str
) -> None:
    response = client_for(bob).post(charter_url(project), {**FORM, **changes})
    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in m for m in form.errors[field]), form.errors
    body = response.content.decode()
    assert "Please correct the marked fields." in body
    assert f'field field-{field} invalid"' in body
    assert not CharterVersion.objects.filter(project=project).exists()


def test_submit_needs_the_required_fields(project: Any, client_for: Any, bob: Any) -> None:
    client = client_for(bob)
    client.post(charter_url(project), {"business_problem": "Churn", "question_type": "regression"})
    response = client.post(charter_url(project, "submit/"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    for field in ("objective", "success_metric", "threshold", "scope", "deployment_mode"):
        assert errors[field] == ["Required before the charter can be submitted."], field
    assert errors["target_variable"] == ["A supervised question needs a target variable."]
    assert "business_problem" not in errors
    body = response.content.decode()
    assert "not ready for sign-off" in body
    # The form still shows the saved draft.
    assert response.context["form"]["business_problem"].value() == "Churn"
    assert not ApprovalRequest.objects.exists()
    assert CharterVersion.objects.get(project=project).status == CharterStatus.DRAFT


def test_submit_without_a_draft_says_so(project: Any, client_for: Any, bob: Any) -> None:
    response = client_for(bob).post(charter_url(project, "submit/"))
    assert response.status_code == 200
    assert "There is no draft to submit; edit the charter first." in response.content.decode()


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 302),
        ("bob", 302),
        ("carol", 403),
        ("dave", 403),
        ("charlie", 404),
        ("admin_user", 403),
    ],
)
def test_who_may_submit(
    project: Any, client_for: Any, alice: Any, request: Any, who: str, status: int
) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    response = client_for(request.getfixturevalue(who)).post(charter_url(project, "submit/"))
    assert response.status_code == status
    assert ApprovalRequest.objects.filter(project=project).exists() == (status == 302)


def test_submitted_charter_is_frozen_and_saving_opens_the_next_version(
    project: Any, client_for: Any, bob: Any
) -> None:
    client = client_for(bob)
    client.post(charter_url(project), FORM)
    response = client.post(charter_url(project, "submit/"), follow=True)
    body = response.content.decode()
    assert "Sign off charter v1: sent to the project&#x27;s business approvers." in body
    assert "v1 · Awaiting sign-off" in body
    assert "Saving opens v2 as a new draft" in body
    assert "Submit for sign-off" not in body

    client.post(charter_url(project), {**FORM, "threshold": "0.82"})
    assert list(CharterVersion.objects.filter(project=project).values_list("number", "status")) == [
        (2, "draft"),
        (1, "submitted"),
    ]


# --- Versions and compare --------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), EVERYONE)
def test_versions_and_compare_as_everyone(
    project: Any, client_for: Any, alice: Any, dave: Any, request: Any, who: str, status: int
) -> None:
    signed_off(project, alice, dave)
    charter_draft_save(actor=alice, project=project, values={"threshold": 0.85})
    client = client_for(request.getfixturevalue(who))
    response = client.get(charter_url(project, "versions/"))
    assert response.status_code == status
    if status == 200:
        body = response.content.decode()
        assert "v1" in body and "v2" in body and "Signed off" in body
        assert "?a=1&amp;b=2" in body
    assert client.get(charter_url(project, "compare/?a=1&b=2")).status_code == status


def test_compare_marks_changed_fields(project: Any, client_for: Any, alice: Any, dave: Any) -> None:
    signed_off(project, alice, dave)
    charter_draft_save(
        actor=alice,
        project=project,
        values={"threshold": 0.85, "data_sources": ["CRM export", "billing", "web logs"]},
    )
    response = client_for(alice).get(charter_url(project, "compare/?a=1&b=2"))
    assert response.status_code == 200
    rows = {row["label"]: row for row in response.context["rows"]}
    changed = {label for label, row in rows.items() if row["changed"]}
    assert changed == {"Threshold", "Planned data sources"}
    assert (rows["Threshold"]["a"], rows["Threshold"]["b"]) == ("0.8", "0.85")
    body = response.content.decode()
    assert body.count('<tr class="changed">') == 2
    assert "web logs" in body

    # Without a choice, the latest version against the one before it.
    response = client_for(alice).get(charter_url(project, "compare/"))
    assert (response.status_code, response.context["a"], response.context["b"]) == (200, 1, 2)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?a=1&b=7", 404, "This charter has no version 7."),
        ("?a=x&b=1", 400, "Choose two versions to compare"),
        ("?a=1", 400, "Choose two versions to compare"),
        ("?a=-1&b=1", 400, "Choose two versions to compare"),
        ("?a=99999999999999999999999&b=1", 404, "no version 99999999999999999999999"),
        ("", 200, "There is only one version so far"),
    ],
)
def test_compare_with_bad_versions_explains(
    project: Any, client_for: Any, alice: Any, query: str, status: int, message: str
) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    response = client_for(alice).get(charter_url(project, f"compare/{query}"))
    assert response.status_code == status
    assert message in response.content.decode()


def test_pages_need_a_login(project: Any, client: Any) -> None:
    for url in (charter_url(project), charter_url(project, "versions/")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(charter_url(project), FORM).status_code == 302
    assert not CharterVersion.objects.exists()
