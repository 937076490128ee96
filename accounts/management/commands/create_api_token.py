from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import TOKEN_DEFAULT_LIFETIME_DAYS, TOKEN_LIFETIME_CHOICES, User
from accounts.services import token_create


class Command(BaseCommand):
    help = (
        "Create a personal access token for USERNAME and print it (and nothing else); "
        "its expiry goes to stderr."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")
        parser.add_argument(
            "--days",
            type=int,
            choices=TOKEN_LIFETIME_CHOICES,
            default=TOKEN_DEFAULT_LIFETIME_DAYS,
            help=f"Days until it expires (default {TOKEN_DEFAULT_LIFETIME_DAYS}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        token, raw = token_create(user=user, name=options["name"], lifetime_days=options["days"])
        self.stdout.write(raw)
        self.stderr.write(f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
