from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.models import AuditEvent
from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit chain; print the first broken sequence number and exit 1 if any."

    def handle(self, *args: Any, **options: Any) -> None:
        broken = audit_chain_verify()
        if broken is not None:
            self.stderr.write(f"audit chain broken at sequence {broken}")
            raise SystemExit(1)
        self.stdout.write(f"audit chain intact: {AuditEvent.objects.count()} events")
