from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.services import audit_chain_report, audit_checkpoint_write


class Command(BaseCommand):
    help = (
        "Check the audit chain against its MACs and the signed checkpoints; name every "
        "problem and exit 1 if any. An intact chain gets a new signed checkpoint."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-checkpoint",
            action="store_true",
            help="Only check; do not sign and store a checkpoint of the head.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_report()
        if not report.intact:
            self.stderr.write(f"audit chain broken at sequence {report.first_broken}")
            for problem in report.problems:
                self.stderr.write(f"  {problem}")
            raise SystemExit(1)
        line = (
            f"audit chain intact: {report.events} events, "
            f"{report.checkpoints} signed checkpoints agree"
        )
        if report.without_mac:
            line += f" ({report.without_mac} early events predate MACs)"
        self.stdout.write(line)
        if not options["no_checkpoint"]:
            checkpoint = audit_checkpoint_write(report=report)
            if checkpoint is not None:
                self.stdout.write(f"checkpoint signed at sequence {checkpoint.sequence}")
