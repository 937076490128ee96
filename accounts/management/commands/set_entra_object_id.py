from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.oidc import entra_object_id_record


class Command(BaseCommand):
    help = (
        "Record USERNAME's Microsoft Entra ID object id (audited), for a user who does not "
        "sign in with single sign-on; Azure ML assigns their notebooks to it. "
        "An empty OBJECT_ID clears it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("object_id", help="a GUID, as the Entra admin center shows it")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        try:
            changed = entra_object_id_record(
                user=user, object_id=options["object_id"].strip(), actor=None, via="command"
            )
        except ValueError as exc:
            raise CommandError(f"{options['object_id']!r} is not an Entra ID object id.") from exc
        shown = user.entra_object_id or "(none)"
        verb = "now" if changed else "already"
        self.stdout.write(f"{user.username}: Entra ID object id {verb} {shown}")
