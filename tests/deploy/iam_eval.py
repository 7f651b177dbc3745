"""A small evaluator of an IAM identity policy: enough of AWS's rules to prove what it denies.

One request is an action on one resource ARN with its request context (condition keys and
values). The decision follows AWS's order for a single identity policy: an explicit ``Deny`` that
matches wins, else an ``Allow`` that matches allows, else the request is implicitly denied. A
statement matches when its ``Action`` names the action (``*`` and ``?`` wildcards), its
``Resource`` the ARN (compared component by component, as IAM compares ARNs) and every condition
holds: operators AND, keys within an operator AND, the values listed for a key OR.

A condition on a key the request does not carry is false, except ``Null`` (which asks just that)
and ``ForAllValues:`` (true over an empty set, as AWS has it). An operator this module does not
know raises, so a policy cannot pass a test by using something the evaluator would skip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["allow", "deny", "implicit-deny"]
Value = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, Value] = field(default_factory=dict)

    def values(self, key: str) -> list[str] | None:
        """The request's values of ``key`` (names are case-insensitive), None if absent."""
        for name, value in self.context.items():
            if name.lower() == key.lower():
                return [value] if isinstance(value, str) else list(value)
        return None


def wildcard(pattern: str, value: str, *, case: bool = True) -> bool:
    """``value`` matches ``pattern``, where ``*`` is any run of characters and ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def arn_like(pattern: str, arn: str) -> bool:
    """IAM's ARN comparison: each of the six colon-separated components matched on its own."""
    if pattern == "*":
        return True
    want, have = pattern.split(":", 5), arn.split(":", 5)
    return len(want) == len(have) == 6 and all(map(wildcard, want, have))


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _bool(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _arn_equals(expected: str, actual: str) -> bool:
    return expected == actual


_SINGLE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _string_equals,
    "StringLike": wildcard,
    "Bool": _bool,
    "ArnEquals": _arn_equals,
    "ArnLike": arn_like,
}


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    """One key of one condition operator, evaluated against ``request``."""
    wanted, actual = _listed(expected), request.values(key)
    if operator == "Null":
        (flag,) = wanted
        return (actual is None or actual == []) == (flag.lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    compare = _SINGLE.get(base)
    if compare is None or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise ValueError(f"the evaluator does not know the condition operator {operator}")
    if qualifier == "ForAllValues":
        return all(any(compare(w, a) for w in wanted) for a in actual or [])
    if actual is None:
        return False
    if qualifier == "ForAnyValue":
        return any(compare(w, a) for w in wanted for a in actual)
    assert len(actual) == 1, f"{key} has several values: use ForAllValues or ForAnyValue"
    return any(compare(w, actual[0]) for w in wanted)


def matches(statement: Mapping[str, Any], request: Request) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
    if unknown:
        raise ValueError(f"the evaluator does not know the statement elements {unknown}")
    if not any(wildcard(a, request.action, case=False) for a in _listed(statement["Action"])):
        return False
    if not any(arn_like(r, request.resource) for r in _listed(statement["Resource"])):
        return False
    return all(
        condition_holds(operator, key, expected, request)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def decide(document: Mapping[str, Any], request: Request) -> Decision:
    """What ``document`` makes of ``request``: an explicit deny wins, then an allow."""
    matching = {s["Effect"] for s in document["Statement"] if matches(s, request)}
    if "Deny" in matching:
        return "deny"
    return "allow" if "Allow" in matching else "implicit-deny"


def allowed(document: Mapping[str, Any], request: Request) -> bool:
    return decide(document, request) == "allow"
