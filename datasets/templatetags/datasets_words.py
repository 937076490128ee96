"""Template filters that put the data stage in words (see datasets.wording)."""

from __future__ import annotations

from typing import Any

from django import template

from datasets import wording

register = template.Library()


@register.filter
def rule_sentence(rule: Any) -> str:
    """``{{ rule|rule_sentence }}`` for a ValidationRule or a result dict."""
    if isinstance(rule, dict):
        return wording.rule_sentence(
            rule.get("kind", ""), rule.get("column", ""), rule.get("params")
        )
    return wording.rule_sentence(rule.kind, rule.column, rule.params)


@register.filter
def result_sentence(result: dict[str, Any], rows: int) -> str:
    return wording.result_sentence(result, rows)


@register.filter
def status_words(status: str, reason: str = "") -> str:
    return wording.status_words(status, reason or "")
