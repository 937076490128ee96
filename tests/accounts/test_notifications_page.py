"""The notifications page: paged, searched, only the unread on demand, and
links only inside the portal."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Notification
from accounts.notifications import notify

pytestmark = pytest.mark.django_db


def test_notifications_are_paged_searched_and_filtered(client_for: Any, bob: Any) -> None:
    for n in range(60):
        notify(users=[bob], text=f"Churn: note {n:02d}", url=f"/approvals/{n}/")
    notify(users=[bob], text="Fraud: a different project", url="https://evil.example/")
    Notification.objects.filter(text="Churn: note 00").update(read_at="2026-01-01T00:00Z")
    client = client_for(bob)
    first = client.get("/notifications/")
    assert first.context["page"].paginator.count == 61
    assert len(first.context["page"].object_list) == 50
    body = first.content.decode()
    assert 'href="?&amp;page=2"' in body
    assert "Fraud: a different project" in body and 'href="https://evil.example/"' not in body
    assert first.context["unread"] == 60
    assert len(client.get("/notifications/?page=2").context["page"].object_list) == 11

    found = client.get("/notifications/", {"q": "fraud"}).context["page"]
    assert [n.text for n in found] == ["Fraud: a different project"]
    unread = client.get("/notifications/", {"unread": "1", "sort": "oldest"}).context["page"]
    assert unread.paginator.count == 60 and unread.object_list[0].text == "Churn: note 01"
    assert "No notification matches." in client.get("/notifications/?q=zzz").content.decode()


def test_notification_page_queries_do_not_grow(
    client_for: Any, bob: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(bob)
    notify(users=[bob], text="one")
    client.get("/notifications/")
    with django_assert_max_num_queries(8):
        client.get("/notifications/")
    for n in range(40):
        notify(users=[bob], text=f"more {n}")
    with django_assert_max_num_queries(8):
        client.get("/notifications/")
