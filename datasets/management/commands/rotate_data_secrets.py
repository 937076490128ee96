from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from datasets.services import secrets_rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every data source's secrets with the first key of "
        "FIELD_ENCRYPTION_KEYS. Put the new key first, run this, then drop the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = secrets_rotate_all()
        self.stdout.write(f"Re-encrypted the secrets of {count} data source(s).")
