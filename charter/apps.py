from __future__ import annotations

from django.apps import AppConfig


class CharterConfig(AppConfig):
    name = "charter"
    verbose_name = "Charter"

    def ready(self) -> None:
        from charter import services  # noqa: F401  (registers the charter approval kind)
