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

import operator
import re
from collections.abc import Callable, Mapping
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
    """A recursive-descent reading of one condition into a tree, put together into a function
    by :func:`_compile` (a scan reads the expression once, not once per item)."""

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
        comparison = self._take()
        if comparison not in COMPARISONS:
            raise ExpressionError(f"unknown comparison {comparison!r}")
        return ("cmp", word, comparison, self._take())

    def _function(self, name: str) -> Node:
        self._take("(")
        path = self._take()
        prefix = None
        if name == "begins_with":
            self._take(",")
            prefix = self._take()
        self._take(")")
        return ("fn", name, path, prefix)


Check = Callable[[Item, Mapping[str, str], Mapping[str, Any]], bool]
Operand = Callable[[Item, Mapping[str, str], Mapping[str, Any]], "dict[str, Any] | None"]


@cache
def _compiled(text: str) -> Check:
    """The condition ``text`` as a function of an item, names and values: parsed and put
    together once, then called per item."""
    return _compile(_Parser(text).condition())


def _compile(node: Node) -> Check:
    """``node`` as a function; every operand is looked at when it runs (a missing name or
    value is an error wherever it is, as DynamoDB validates the whole expression)."""
    kind = node[0]
    if kind in ("or", "and"):
        parts = [_compile(n) for n in node[1]]
        join = any if kind == "or" else all
        return lambda item, names, values: join([p(item, names, values) for p in parts])
    if kind == "not":
        inner = _compile(node[1])
        return lambda item, names, values: not inner(item, names, values)
    if kind == "cmp":
        left, op, right = _operand(node[1]), node[2], _operand(node[3])
        return lambda item, names, values: _compare(
            left(item, names, values), op, right(item, names, values)
        )
    _, name, path_token, prefix_token = node
    if name == "begins_with":
        return _begins_with(path_token, _operand(prefix_token))
    exists = name == "attribute_exists"
    return lambda item, names, values: (_path(path_token, names) in item) == exists


def _begins_with(path_token: str, prefix: Operand) -> Check:
    def check(item: Item, names: Mapping[str, str], values: Mapping[str, Any]) -> bool:
        path = _path(path_token, names)
        start = prefix(item, names, values)
        value = item.get(path)
        return (
            value is not None
            and start is not None
            and str(_plain(value)).startswith(str(_plain(start)))
        )

    return check


def _operand(token: str) -> Operand:
    """A ``:value`` (read, never changed) or an attribute path's value in the item."""
    if token.startswith(":"):

        def value(item: Item, names: Mapping[str, str], values: Mapping[str, Any]) -> Any:
            if token not in values:
                raise ExpressionError(f"value {token} not given")
            return values[token]

        return value
    return lambda item, names, values: item.get(_path(token, names))


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
    return True if not text else _compiled(text)(item, names, values)


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


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(left: Any, op: str, right: Any) -> bool:
    if left is None or right is None:
        return False  # a missing attribute compares as false, as in DynamoDB
    a, b = _plain(left), _plain(right)
    if type(a) is not type(b):
        return op == "<>"
    return bool(_COMPARE[op](a, b))
