"""Compute sizes and providers in words, for people who do not know the catalog's names."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

register = template.Library()

PROVIDERS = {
    "local": "This machine (the local provider runs workspaces on the portal's own server)",
    "azure": "Azure Machine Learning",
}


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@register.filter
def size_words(size: Any) -> str:
    """``Standard_D2s_v3 (2 vCPUs, 8 GB memory, no GPU)``."""
    if size is None:
        return ""
    memory = Decimal(size.memory_gb).normalize()
    gpu = (
        f"{_plural(size.gpus, 'GPU')}{f' ({size.gpu_type})' if size.gpu_type else ''}"
        if size.gpus
        else "no GPU"
    )
    return f"{size.name} ({_plural(size.vcpus, 'vCPU')}, {memory:f} GB memory, {gpu})"


@register.filter
def provider_words(provider: str) -> str:
    return PROVIDERS.get(provider, provider)
