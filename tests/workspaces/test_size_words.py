"""Sizes in words next to the catalog name; the local provider says where it runs."""

from __future__ import annotations

from typing import Any

import pytest

from workspaces import services
from workspaces.templatetags.workspace_words import size_words

pytestmark = pytest.mark.django_db


def test_size_in_words(small: Any, gpu: Any) -> None:
    assert size_words(small) == "Standard_D2s_v3 (2 vCPUs, 8 GB memory, no GPU)"
    assert size_words(gpu).startswith("Standard_NC4as_T4_v3 (4 vCPUs, 28 GB memory, 1 GPU (")


def test_workspace_pages_show_the_size_and_where_it_runs(
    project: Any, client_for: Any, bob: Any, small: Any, settings: Any
) -> None:
    settings.CLOUD_PROVIDER = "local"
    ws = services.workspace_request(actor=bob, project=project, name="explore", size=small)
    client = client_for(bob)
    detail = client.get(f"/projects/churn/workspaces/{ws.pk}/").content.decode()
    assert "Standard_D2s_v3 (2 vCPUs, 8 GB memory, no GPU)" in detail
    assert "This machine (the local provider runs workspaces on the portal" in detail
    listed = client.get("/projects/churn/workspaces/").content.decode()
    assert "Standard_D2s_v3 (2 vCPUs, 8 GB memory, no GPU)" in listed
