from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from charter.services import charter_draft_save, charter_submit
from governance.services import approval_decide
from projects.models import Membership, Project, Role
from projects.services import membership_add, project_create

DEMO_PROJECT = "customer-churn"
# The demo project's charter, signed off so that every later stage can be tried at once.
DEMO_CHARTER: dict[str, Any] = {
    "business_problem": "Subscribers cancel without warning; the retention team calls too late.",
    "objective": "Decide whom the retention team calls first each week.",
    "question_type": "classification",
    "target_variable": "target",
    "success_metric": "roc_auc",
    "threshold": 0.8,
    "scope": "Consumer subscriptions.",
    "out_of_scope": "Business accounts.",
    "data_sources": ["CRM export"],
    "deployment_mode": "batch",
    "stakeholders": "Head of retention",
    "cost_ceiling": 1500,
}
# username -> (role in the demo project, or None for the platform admin)
DEMO_USERS: dict[str, str | None] = {
    "lead": Role.LEAD,
    "scientist": Role.DATA_SCIENTIST,
    "engineer": Role.DATA_ENGINEER,
    "mlengineer": Role.ML_ENGINEER,
    "analyst": Role.ANALYST,
    "validator": Role.VALIDATOR,
    "approver": Role.BUSINESS_APPROVER,
    "admin": None,
}


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD", "stagegate-demo")


class Command(BaseCommand):
    help = "Create one demo user per role and a demo project. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        password = demo_password()
        with transaction.atomic():
            users = {}
            for username, role in DEMO_USERS.items():
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={
                        "email": f"{username}@example.com",
                        "is_staff": role is None,
                        "is_superuser": role is None,
                    },
                )
                if created:
                    user.set_password(password)
                    user.save(update_fields=["password"])
                users[username] = user
            project = Project.objects.filter(slug=DEMO_PROJECT).first()
            if project is None:
                project = project_create(
                    actor=users["lead"],
                    name="Customer churn",
                    slug=DEMO_PROJECT,
                    description=(
                        "Predict which subscribers will cancel in the next 90 days, so the "
                        "retention team can call them first."
                    ),
                    monthly_budget=2000,
                )
            for username, role in DEMO_USERS.items():
                if (
                    role
                    and role != Role.LEAD
                    and not Membership.objects.filter(
                        project=project, user=users[username]
                    ).exists()
                ):
                    membership_add(
                        actor=users["lead"], project=project, user=users[username], role=role
                    )
            if not project.charters.exists():
                # Written, submitted and signed off through the services, as people would.
                charter_draft_save(actor=users["scientist"], project=project, values=DEMO_CHARTER)
                approval = charter_submit(actor=users["scientist"], project=project)
                approval_decide(
                    actor=users["approver"],
                    approval_id=approval.pk,
                    approve=True,
                    comment="Clear and measurable.",
                )
            from datasets.demo import demo_data_seed

            demo_data_seed(project=project, actor=users["engineer"])
            from experiments.demo import demo_data_digest, demo_experiments_seed

            demo_experiments_seed(
                project=project,
                actor=users["scientist"],
                data_digest=demo_data_digest(project=project),
            )
        self.stdout.write(f"Demo users (password {password!r}): {', '.join(DEMO_USERS)}")
