from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cloud import get_provider
from cloud.base import ProviderConfigurationError, ProviderError
from workspaces.services import azure_network_apply


class Command(BaseCommand):
    help = (
        "Apply AZURE_WORKSPACE_ALLOWED_IPS as the Azure ML workspace's IP rules (audited as "
        "azure.network_applied). An empty setting allows every network again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            provider = get_provider("azure")
        except ProviderConfigurationError as exc:
            raise CommandError(f"The Azure provider is not configured: {exc}") from exc
        try:
            rules = azure_network_apply(provider=provider)
        except ProviderError as exc:
            raise CommandError(f"Not applied: {exc}") from exc
        workspace = settings.AZURE_ML_WORKSPACE
        if rules:
            self.stdout.write(
                f"Azure ML workspace {workspace}: access only from {len(rules)} "
                f"IP rule{'' if len(rules) == 1 else 's'}:"
            )
            for rule in rules:
                self.stdout.write(f"  {rule}")
        else:
            self.stdout.write(
                f"Azure ML workspace {workspace}: no IP rules, every network allowed."
            )
