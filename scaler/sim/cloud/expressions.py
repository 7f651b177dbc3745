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


Node = tuple[Any, ...]  # ("or" | "and", [nodes]), ("not", node), ("cmp", ...), ("fn", ...)


class _Parser:
    """A recursive-descent reading of one condition into a tree, evaluated per item by
    :func:`_evaluate` (a scan reads the expression once, not once per item)."""

    def __init__(self, text: str) -> None:
        self._tokens, self._at = tokens(text), 0

    def condition(self) -> Node:
        node = self._or()
        if self._at != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._at]!r}")
        return node

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

    def _or(self) -> Node:
        parts = [self._and()]
        while self._peek() == "OR":
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._peek() == "AND":
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def _not(self) -> Node:
        if self._peek() == "NOT":
            self._take()
            return ("not", self._not())
        return self._atom()

    def _atom(self) -> Node:
        if self._peek() == "(":
            self._take()
            node = self._or()
            self._take(")")
            return node
        word = self._take()
        if word in ("attribute_exists", "attribute_not_exists", "begins_with"):
            return self._function(word)
        operator = self._take()
        if operator not in COMPARISONS:
            raise ExpressionError(f"unknown comparison {operator!r}")
        return ("cmp", word, operator, self._take())

    def _function(self, name: str) -> Node:
        self._take("(")
        path = self._take()
        prefix = None
        if name == "begins_with":
            self._take(",")
            prefix = self._take()
        self._take(")")
        return ("fn", name, path, prefix)


@cache
def _parsed(text: str) -> Node:
    return _Parser(text).condition()


def _evaluate(node: Node, item: Item, names: Mapping[str, str], values: Mapping[str, Any]) -> bool:
    """``node`` over ``item``; every operand is looked at (a missing name or value is an error
    wherever it is, as DynamoDB validates the whole expression)."""
    kind = node[0]
    if kind == "or":
        return any([_evaluate(n, item, names, values) for n in node[1]])
    if kind == "and":
        return all([_evaluate(n, item, names, values) for n in node[1]])
    if kind == "not":
        return not _evaluate(node[1], item, names, values)
    if kind == "cmp":
        left = _operand(node[1], item, names, values)
        return _compare(left, node[2], _operand(node[3], item, names, values))
    _, name, path_token, prefix_token = node
    path = _path(path_token, names)
    if name == "begins_with":
        prefix = _operand(prefix_token, item, names, values)
        value = item.get(path)
        return (
            value is not None
            and prefix is not None
            and str(_plain(value)).startswith(str(_plain(prefix)))
        )
    return bool((path in item) == (name == "attribute_exists"))


def _operand(
    token: str, item: Item, names: Mapping[str, str], values: Mapping[str, Any]
) -> dict[str, Any] | None:
    if token.startswith(":"):
        if token not in values:
            raise ExpressionError(f"value {token} not given")
        return dict(values[token])
    return item.get(_path(token, names))


def _path(token: str, names: Mapping[str, str]) -> str:
    if token.startswith("#"):
        if token not in names:
            raise ExpressionError(f"name {token} not given")
        return names[token]
    return token


def holds(
    text: str | None, item: Item, names: Mapping[str, str], values: Mapping[str, Any]
) -> bool:
    """Does the condition (or filter) ``text`` hold for ``item``? No condition always holds."""
    return True if not text else _evaluate(_parsed(text), item, names, values)


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
