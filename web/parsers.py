"""Request body parsers for the API, with the limits the database needs.

Every parser refuses a NUL character or a lone surrogate anywhere in what it
reads (PostgreSQL stores neither in text or jsonb, and would answer with an
error the view cannot turn into a 400), and the JSON parser refuses documents
nested deeper than ``MAX_JSON_DEPTH``. The body's size is bounded by Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (DRF reads JSON and form bodies through
``request.body``); a larger body gets a 413 from ``web.api.exception_handler``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Deep enough for any document the API takes (a source's config, a rule's
# params), shallow enough that nothing later recurses into trouble.
MAX_JSON_DEPTH = 32


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "Null characters are not allowed."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "The text is not valid Unicode (a lone surrogate)."
    return None


def check_json(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ParseError when ``data`` is too deep or holds text the database refuses."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ParseError(f"JSON parse error - {problem}")
        elif isinstance(value, float) and not math.isfinite(value):
            # 1e999 parses as infinity, which jsonb cannot store.
            raise ParseError("JSON parse error - a number is out of range.")
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels.")
            if isinstance(value, dict):
                stack.extend((key, depth) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_fields(items: Iterable[tuple[str, Any]]) -> None:
    for key, value in items:
        for text in (key, value if isinstance(value, str) else ""):
            problem = text_problem(text)
            if problem:
                raise ParseError(f"Form parse error - {problem}")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing deep nesting, NUL characters and lone surrogates."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        check_json(data)
        return data


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing NUL characters and lone surrogates."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        _check_fields(_flat(data))
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, refusing NUL characters in fields (Django drops
    unprintable characters from file names itself)."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        _check_fields(_flat(result.data))
        return result


def _flat(multi: Any) -> list[tuple[str, Any]]:
    return [(key, value) for key, values in multi.lists() for value in values]
