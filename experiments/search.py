"""MLflow's run search grammar, plus ``OR`` and parentheses, compiled to Q objects.

The filter is parsed with a small ``lark`` grammar; every key and value ends
up as a query parameter, never in the SQL text. Comparisons:

- ``metrics.<key>`` against a number: ``= != < > <= >=``
- ``params.<key>``, ``tags.<key>`` against a string: ``= != LIKE ILIKE IN NOT IN``
- ``attributes.<name>`` (also bare names): ``run_id``, ``run_name``,
  ``status``, ``user_id``, ``artifact_uri``, ``lifecycle_stage`` (strings) and
  ``start_time``, ``end_time`` (numbers)

Keys containing spaces or other characters are quoted with backticks or
double quotes: ``metrics.`f1 score` > 0.5``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from lark import Lark, Token, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from experiments.errors import invalid
from experiments.models import LatestMetric, Param, Run, RunTag

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: atom (_AND atom)*
?atom: comparison | "(" or_expr ")"
comparison: ident COMP value -> compare
          | ident LIKE string -> like
          | ident ILIKE string -> ilike
          | ident NOT IN "(" value ("," value)* ")" -> not_in
          | ident IN "(" value ("," value)* ")" -> in_
ident: NAME ("." part)*
part: NAME | QUOTED_KEY | DQ_STRING
?value: string | NUMBER -> number
string: SQ_STRING | DQ_STRING
COMP: "<=" | ">=" | "!=" | "=" | "<" | ">"
_OR: /OR\b/i
_AND: /AND\b/i
LIKE: /LIKE\b/i
ILIKE: /ILIKE\b/i
NOT: /NOT\b/i
IN: /IN\b/i
NAME: /(?!(?i:AND|OR|NOT|IN|LIKE|ILIKE)\b)[A-Za-z_][A-Za-z0-9_\-]*/
QUOTED_KEY: /`[^`]*`/
SQ_STRING: /'(?:[^'\\]|\\.)*'/
DQ_STRING: /"(?:[^"\\]|\\.)*"/
NUMBER: /[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/
%import common.WS
%ignore WS
"""

_parser = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)

MAX_FILTER_LENGTH = 5000
ENTITY = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
STRING_ATTRIBUTES = {
    "run_id": "uuid",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id_text",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
}
NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time", "created": "start_time"}
COMPARISONS = {"=": "exact", "<": "lt", ">": "gt", "<=": "lte", ">=": "gte"}


@dataclass(frozen=True)
class Key:
    entity: str  # metric, param, tag, attribute
    name: str


def _unquote(text: str) -> str:
    if text[0] == "`":
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _key(parts: list[str]) -> Key:
    if len(parts) == 1:
        entity, name = "attribute", parts[0]
    else:
        prefix = parts[0].lower()
        if prefix not in ENTITY:
            raise invalid(
                f"Invalid entity type '{parts[0]}'. Valid values are "
                "['metrics', 'params', 'tags', 'attributes']."
            )
        entity, name = ENTITY[prefix], ".".join(parts[1:])
    if not name:
        raise invalid("A key in the filter is empty.")
    if entity == "attribute":
        lowered = name.lower()
        if lowered not in STRING_ATTRIBUTES and lowered not in NUMERIC_ATTRIBUTES:
            raise invalid(f"Invalid attribute key '{name}' specified.")
        name = lowered
    return Key(entity, name)


def like_to_regex(pattern: str) -> str:
    """A SQL LIKE pattern as an anchored regular expression (portable across
    PostgreSQL and SQLite): ``%`` is any run, ``_`` any one character."""
    out = ["^"]
    for char in pattern:
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char.isalnum():
            out.append(char)
        else:
            out.append("\\" + char)
    out.append("$")
    return "".join(out)


class _ToQ(Transformer[Token, Any]):
    def ident(self, items: list[Any]) -> Key:
        return _key([str(i) for i in items])

    def part(self, items: list[Token]) -> str:
        token = items[0]
        return _unquote(str(token)) if token.type != "NAME" else str(token)

    def string(self, items: list[Token]) -> str:
        return _unquote(str(items[0]))

    def number(self, items: list[Any]) -> Any:
        value = items[0]
        if isinstance(value, Token) and value.type == "NUMBER":
            return float(value)
        return value

    def compare(self, items: list[Any]) -> Q:
        key, op, value = items
        return _comparison(key, str(op), value)

    def like(self, items: list[Any]) -> Q:
        return _pattern(items[0], items[2], insensitive=False)

    def ilike(self, items: list[Any]) -> Q:
        return _pattern(items[0], items[2], insensitive=True)

    def in_(self, items: list[Any]) -> Q:
        return _membership(items[0], items[2:])

    def not_in(self, items: list[Any]) -> Q:
        return _membership(items[0], items[3:], negate=True)

    def or_expr(self, items: list[Q]) -> Q:
        result = items[0]
        for item in items[1:]:
            result |= item
        return result

    def and_expr(self, items: list[Q]) -> Q:
        result = items[0]
        for item in items[1:]:
            result &= item
        return result


def _number(key: Key, value: Any) -> float:
    if not isinstance(value, float):
        raise invalid(f"Expected numeric value type for {key.entity} '{key.name}', got a string.")
    return value


def _text(key: Key, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(
            f"Expected a quoted string value for {key.entity} '{key.name}', got a number."
        )
    return value


def _entity_exists(key: Key, condition: Q) -> Q:
    model: Any = {"metric": LatestMetric, "param": Param, "tag": RunTag}[key.entity]
    name_filter = Q(key__name=key.name) if key.entity == "metric" else Q(key=key.name)
    return Q(Exists(model.objects.filter(name_filter, condition, run=OuterRef("pk"))))


def _comparison(key: Key, op: str, value: Any) -> Q:
    if key.entity == "metric" or (key.entity == "attribute" and key.name in NUMERIC_ATTRIBUTES):
        number = _number(key, value)
        if key.entity == "attribute":
            field = NUMERIC_ATTRIBUTES[key.name]
            if op == "!=":
                return ~Q(**{field: number}) & Q(**{f"{field}__isnull": False})
            return Q(**{f"{field}__{COMPARISONS[op]}": number})
        if op == "!=":
            return _entity_exists(key, ~Q(value=number))
        return _entity_exists(key, Q(**{f"value__{COMPARISONS[op]}": number}))
    text = _text(key, value)
    if op not in ("=", "!="):
        raise invalid(
            f"Invalid comparator '{op}' for {key.entity} '{key.name}': "
            "strings support =, !=, LIKE, ILIKE, IN and NOT IN."
        )
    if key.entity == "attribute":
        field = STRING_ATTRIBUTES[key.name]
        return Q(**{field: text}) if op == "=" else ~Q(**{field: text})
    if op == "=":
        return _entity_exists(key, Q(value=text))
    return _entity_exists(key, ~Q(value=text))


def _pattern(key: Key, pattern: str, *, insensitive: bool) -> Q:
    if key.entity == "metric" or key.name in NUMERIC_ATTRIBUTES:
        raise invalid(f"LIKE and ILIKE compare strings, not {key.entity} '{key.name}'.")
    lookup = "iregex" if insensitive else "regex"
    regex = like_to_regex(pattern)
    if key.entity == "attribute":
        return Q(**{f"{STRING_ATTRIBUTES[key.name]}__{lookup}": regex})
    return _entity_exists(key, Q(**{f"value__{lookup}": regex}))


def _membership(key: Key, values: list[Any], *, negate: bool = False) -> Q:
    if key.entity == "metric" or key.name in NUMERIC_ATTRIBUTES:
        raise invalid(f"IN and NOT IN compare strings, not {key.entity} '{key.name}'.")
    texts = [_text(key, v) for v in values]
    if key.entity == "attribute":
        q = Q(**{f"{STRING_ATTRIBUTES[key.name]}__in": texts})
        return ~q if negate else q
    inner = ~Q(value__in=texts) if negate else Q(value__in=texts)
    return _entity_exists(key, inner)


def filter_to_q(text: str | None) -> Q:
    """The Q object for a filter string; an empty filter matches everything."""
    if not text or not text.strip():
        return Q()
    if "\x00" in text:
        raise invalid("The filter contains a NUL character.")
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    try:
        tree = _parser.parse(text)
        result = _ToQ().transform(tree)
    except UnexpectedInput as exc:
        raise invalid(
            f"Error on parsing filter '{text}' at position {exc.column}: "
            "expected <key> <comparator> <value>, joined by AND / OR, "
            "with optional parentheses."
        ) from None
    except VisitError as exc:
        raise exc.orig_exc from None
    if not isinstance(result, Q):
        raise invalid(f"Invalid filter '{text}'.")
    return result


# --- order_by -------------------------------------------------------------

ORDER_RE = re.compile(
    r"^\s*(?P<key>(?:[A-Za-z_][A-Za-z0-9_\-]*)(?:\.(?:`[^`]*`|\"[^\"]*\"|[A-Za-z0-9_\-]+))*)"
    r"(?:\s+(?P<dir>ASC|DESC))?\s*$",
    re.I,
)


def _order_key(text: str) -> tuple[Key, bool]:
    match = ORDER_RE.match(text)
    if not match:
        raise invalid(f"Invalid order_by clause '{text}'.")
    raw = match.group("key")
    parts = re.findall(r"`[^`]*`|\"[^\"]*\"|[^.]+", raw)
    key = _key([_unquote(p) if p[0] in '`"' else p for p in parts])
    descending = (match.group("dir") or "ASC").upper() == "DESC"
    return key, descending


def apply_order(runs: QuerySet[Run], order_by: list[str]) -> QuerySet[Run]:
    """Order by the clauses, runs lacking a key last; then newest first."""
    if len(order_by) > 10:
        raise invalid("At most 10 order_by clauses are allowed.")
    ordering: list[Any] = []
    for i, clause in enumerate(order_by):
        key, descending = _order_key(clause)
        if key.entity == "attribute":
            field = NUMERIC_ATTRIBUTES.get(key.name) or STRING_ATTRIBUTES[key.name]
            expr = F(field)
        else:
            alias = f"_order_{i}"
            model: Any = {"metric": LatestMetric, "param": Param, "tag": RunTag}[key.entity]
            name_filter = Q(key__name=key.name) if key.entity == "metric" else Q(key=key.name)
            runs = runs.annotate(
                **{
                    alias: Subquery(
                        model.objects.filter(name_filter, run=OuterRef("pk")).values("value")[:1]
                    )
                }
            )
            expr = F(alias)
        ordering.append(expr.desc(nulls_last=True) if descending else expr.asc(nulls_last=True))
    ordering += [F("start_time").desc(nulls_last=True), F("uuid").asc()]
    return runs.order_by(*ordering)


# --- page tokens ----------------------------------------------------------


def page_token_encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_token_decode(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise invalid(f"Invalid page token '{token}'.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid(f"Invalid page token '{token}'.")
    return offset
