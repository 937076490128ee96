"""The gate's pages: access rules, the request form's reasons, the approval
page's evidence in words, the admin override, and query counts."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.gate_models import DeploymentRequest, RequestState
from tests.deployments import gate_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]

REASON = "It beats the threshold on held-out customers."


def urls(version: Any, report: Any, request: Any) -> list[str]:
    base = "/projects/churn/"
    v = f"{base}models/churn/v{version.version}/"
    return [
        f"{v}validation/",
        f"{v}deploy/",
        f"{base}validations/{report.pk}/",
        f"{base}deployments/",
        f"{base}deployments/{request.pk}/",
    ]


@pytest.fixture
def world(project: Any, bob: Any) -> tuple[Any, Any, Any]:
    version = gate_data.version(project, bob)
    report = gate_data.report(project, version, bob, 0.91, champion=0.85)
    from deployments import gate

    request = gate.deployment_request_create(
        actor=bob, version=version, target="realtime", reason=REASON, user_impact="Fewer calls."
    )
    return version, report, request


def test_outsiders_get_404_everywhere(world: Any, charlie: Any, client_for: Any) -> None:
    client = client_for(charlie)
    for url in urls(*world):
        assert client.get(url).status_code == 404, url


def test_analysts_read_but_do_not_request_or_validate(
    world: Any, carol: Any, client_for: Any
) -> None:
    version, report, request = world
    client = client_for(carol)
    validation, deploy, *pages = urls(*world)
    for url in [validation, *pages]:
        assert client.get(url).status_code == 200, url
    assert client.get(deploy).status_code == 403
    answer = client.post(deploy, {"target": "batch", "rollout": "all_at_once", "reason": REASON})
    assert answer.status_code == 403
    assert client.post(validation, {"segments": "plan"}).status_code == 403
    assert DeploymentRequest.objects.count() == 1


def test_the_form_says_what_is_wrong_and_writes_nothing(
    world: Any, bob: Any, client_for: Any
) -> None:
    deploy = urls(*world)[1]
    answer = client_for(bob).post(
        deploy, {"target": "realtime", "rollout": "canary", "canary_percent": 10, "reason": REASON}
    )
    assert answer.status_code == 400
    assert "A baking period of 5 to 10080 minutes." in answer.content.decode()
    assert DeploymentRequest.objects.count() == 1


def test_a_request_from_the_form_lands_on_the_approval_page(
    world: Any, bob: Any, client_for: Any
) -> None:
    deploy = urls(*world)[1]
    answer = client_for(bob).post(
        deploy, {"target": "batch", "rollout": "all_at_once", "reason": REASON}
    )
    assert answer.status_code == 302
    created = DeploymentRequest.objects.order_by("-pk").first()
    assert (
        created is not None and answer["Location"] == f"/projects/churn/deployments/{created.pk}/"
    )


def test_the_approval_page_shows_the_evidence_in_words(
    world: Any, dave: Any, client_for: Any
) -> None:
    page = client_for(dave).get(urls(*world)[4]).content.decode()
    for words in [
        "Put churn version 1 into production?",
        "ROC AUC",
        "0.5 is a coin toss",
        "at least <strong>0.8</strong>",
        "<strong>0.9100</strong>",
        "meets the threshold",
        "Is it as good for every group?",
        "gap between the best and the worst group 0.0500",
        "a month",
        "Fewer calls.",
        "Technical check by the model validator",
        "vendor/plotly/plotly.min.js",
    ]:
        assert words in page, words
    # The business approver decides the second step, not the first.
    assert 'id="decide-form"' not in page


def test_the_validator_sees_the_decision_form(world: Any, project: Any, client_for: Any) -> None:
    vera = gate_data.validator(project)
    page = client_for(vera).get(urls(*world)[4]).content.decode()
    assert 'id="decide-form"' in page and "csrfmiddlewaretoken" in page


def test_an_admin_overrides_a_blocked_request_from_its_page(
    project: Any, bob: Any, admin_user: Any, client_for: Any
) -> None:
    version = gate_data.version(project, bob)
    gate_data.report(project, version, bob, 0.7)
    from deployments import gate

    request = gate.deployment_request_create(
        actor=bob, version=version, target="realtime", reason=REASON
    )
    url = f"/projects/churn/deployments/{request.pk}/"
    client = client_for(admin_user)
    assert "does not reach the charter" in client.get(url).content.decode()
    answer = client.post(f"{url}override/", {"justification": "short"})
    assert answer.status_code == 400 and "at least 20 characters" in answer.content.decode()
    answer = client.post(f"{url}override/", {"justification": "Losses stop sooner with it."})
    assert answer.status_code == 302
    assert DeploymentRequest.objects.get(pk=request.pk).state == RequestState.PENDING


def test_query_counts_do_not_grow_with_rows(
    project: Any, bob: Any, carol: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    from deployments import gate

    client = client_for(carol)
    version = gate_data.version(project, bob)
    for _ in range(2):
        gate_data.report(project, version, bob, 0.9)
        gate.deployment_request_create(actor=bob, version=version, target="batch", reason=REASON)
    with django_assert_max_num_queries(12):
        client.get("/projects/churn/deployments/")
    with django_assert_max_num_queries(12):
        client.get("/projects/churn/models/churn/v1/validation/")
    for _ in range(10):
        gate_data.report(project, version, bob, 0.9)
        gate.deployment_request_create(actor=bob, version=version, target="batch", reason=REASON)
    with django_assert_max_num_queries(12):
        client.get("/projects/churn/deployments/")
    with django_assert_max_num_queries(12):
        client.get("/projects/churn/models/churn/v1/validation/")


def test_the_model_version_page_links_to_validation_and_the_request_form(
    world: Any, carol: Any, client_for: Any
) -> None:
    page = client_for(carol).get("/projects/churn/models/churn/v1/").content.decode()
    assert 'href="/projects/churn/models/churn/v1/validation/"' in page
    assert 'href="/projects/churn/models/churn/v1/deploy/"' in page
