"""DynamoDB expressions, enough of them to judge the scaler's own writes and scans.

Conditions and filters: comparisons (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``) between
attribute paths and ``:values``; ``attribute_exists``, ``attribute_not_exists`` and
``begins_with``; ``AND``, ``OR``, ``NOT`` and parentheses, with DynamoDB's precedence (NOT, then
AND, then OR). Updates: ``SET a = :v, b = :w`` and ``ADD n :one``. Paths are top-level names,
or ``#placeholders`` from ``ExpressionAttributeNames``. Anything else raises
:class:`ExpressionError`, as DynamoDB's ``ValidationException`` would: the simulated world never
guesses what an expression it does not understand means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

Item = dict[str, dict[str, Any]]  # attribute -> {"S": ...} | {"N": ...} | ...
TOKEN = re.compile(r"\s*(<>|<=|>=|=|<|>|\(|\)|,|[#:]?[A-Za-z_][A-Za-z0-9_]*)")
COMPARISONS = frozenset({"=", "<>", "<", "<=", ">", ">="})


class ExpressionError(ValueError):
    """An expression the simulated DynamoDB does not parse (DynamoDB would refuse it too)."""


def tokens(text: str) -> list[str]:
    return list(_tokens(text))


@cache
def _tokens(text: str) -> tuple[str, ...]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        found = TOKEN.match(text, pos)
        if found is None:
            raise ExpressionError(f"cannot parse {text[pos:]!r}")
        out.append(found.group(1))
        pos = found.end()
    return tuple(out)


class _Condition:
    """A recursive-descent reading of one condition over one item."""

    def __init__(
        self, text: str, item: Item, names: Mapping[str, str], values: Mapping[str, Any]
    ) -> None:
        self._tokens, self._at = tokens(text), 0
        self._item, self._names, self._values = item, names, values

    def result(self) -> bool:
        value = self._or()
        if self._at != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._at]!r}")
        return value

    def _peek(self) -> str:
        return self._tokens[self._at].upper() if self._at < len(self._tokens) else ""

    def _take(self, expected: str | None = None) -> str:
        if self._at >= len(self._tokens):
            raise ExpressionError("expression ends too soon")
        token = self._tokens[self._at]
        if expected is not None and token.upper() != expected:
            raise ExpressionError(f"expected {expected!r}, found {token!r}")
        self._at += 1
        return token

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "OR":
            self._take()
            value = self._and() or value
        return value

    def _and(self) -> bool:
        value = self._not()
        while self._peek() == "AND":
            self._take()
            value = self._not() and value
        return value

    def _not(self) -> bool:
        if self._peek() == "NOT":
            self._take()
            return not self._not()
        return self._atom()

    def _atom(self) -> bool:
        if self._peek() == "(":
            self._take()
            value = self._or()
            self._take(")")
            return value
        word = self._take()
        if word in ("attribute_exists", "attribute_not_exists", "begins_with"):
            return self._function(word)
        left = self._operand(word)
        operator = self._take()
        if operator not in COMPARISONS:
            raise ExpressionError(f"unknown comparison {operator!r}")
        return _compare(left, operator, self._operand(self._take()))

    def _function(self, name: str) -> bool:
        self._take("(")
        path = self._path(self._take())
        if name == "begins_with":
            self._take(",")
            prefix = self._operand(self._take())
            self._take(")")
            value = self._item.get(path)
            return (
                value is not None
                and prefix is not None
                and str(_plain(value)).startswith(str(_plain(prefix)))
            )
        self._take(")")
        return (path in self._item) == (name == "attribute_exists")

    def _operand(self, token: str) -> dict[str, Any] | None:
        if token.startswith(":"):
            if token not in self._values:
                raise ExpressionError(f"value {token} not given")
            return dict(self._values[token])
        return self._item.get(self._path(token))

    def _path(self, token: str) -> str:
        if token.startswith("#"):
            if token not in self._names:
                raise ExpressionError(f"name {token} not given")
            return self._names[token]
        return token


def holds(
    text: str | None, item: Item, names: Mapping[str, str], values: Mapping[str, Any]
) -> bool:
    """Does the condition (or filter) ``text`` hold for ``item``? No condition always holds."""
    return True if not text else _Condition(text, item, names, values).result()


def update(text: str, item: Item, names: Mapping[str, str], values: Mapping[str, Any]) -> Item:
    """``item`` after the update expression ``text`` (a new dict)."""
    out, words = dict(item), tokens(text)
    clause, at = "", 0
    while at < len(words):
        word = words[at]
        if word.upper() in ("SET", "ADD"):
            clause, at = word.upper(), at + 1
            continue
        if word == ",":
            at += 1
            continue
        path = names.get(word, word) if word.startswith("#") else word
        if clause == "SET" and at + 2 < len(words) and words[at + 1] == "=":
            out[path] = dict(values[words[at + 2]])
            at += 3
        elif clause == "ADD" and at + 1 < len(words):
            added = _number(values[words[at + 1]])
            out[path] = {"N": str(_number(out.get(path, {"N": "0"})) + added)}
            at += 2
        else:
            raise ExpressionError(f"cannot parse update near {word!r}")
    return out


def _plain(value: Mapping[str, Any]) -> Any:
    if "N" in value:
        return Decimal(value["N"])
    if "S" in value:
        return value["S"]
    if "BOOL" in value:
        return value["BOOL"]
    raise ExpressionError(f"unsupported attribute value {dict(value)!r}")


def _number(value: Mapping[str, Any]) -> Decimal:
    return Decimal(value["N"])


def _compare(left: Any, operator: str, right: Any) -> bool:
    if left is None or right is None:
        return False  # a missing attribute compares as false, as in DynamoDB
    a, b = _plain(left), _plain(right)
    if type(a) is not type(b):
        return operator == "<>"
    return bool(
        {
            "=": a == b,
            "<>": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[operator]
    )
