"""The simulated DynamoDB's expressions: what the scaler's conditions mean, and refusal of
what they do not cover."""

from __future__ import annotations

import pytest

from scaler.sim.cloud.expressions import ExpressionError, holds, update

LEASE = {"name": {"S": "prod/leader"}, "holder": {"S": "a"}, "expires_at": {"N": "100.5"}}
TAKE = "attribute_not_exists(holder) OR expires_at < :now OR holder = :me"


def test_the_lease_take_condition() -> None:
    assert holds(TAKE, {}, {}, {":now": {"N": "0"}, ":me": {"S": "b"}})
    assert not holds(TAKE, LEASE, {}, {":now": {"N": "50"}, ":me": {"S": "b"}})
    assert holds(TAKE, LEASE, {}, {":now": {"N": "101"}, ":me": {"S": "b"}})
    assert holds(TAKE, LEASE, {}, {":now": {"N": "50"}, ":me": {"S": "a"}})


def test_and_binds_tighter_than_or_and_not_tighter_still() -> None:
    values = {":t": {"S": "a"}, ":f": {"S": "z"}}
    assert holds("holder = :t OR holder = :f AND holder = :f", LEASE, {}, values)
    assert not holds("(holder = :t OR holder = :f) AND holder = :f", LEASE, {}, values)
    assert holds("NOT holder = :f AND holder = :t", LEASE, {}, values)


def test_names_placeholders_and_begins_with() -> None:
    names = {"#n": "name"}
    assert holds("begins_with(#n, :p)", LEASE, names, {":p": {"S": "prod/"}})
    assert not holds("begins_with(#n, :p)", LEASE, names, {":p": {"S": "staging/"}})


def test_a_missing_attribute_compares_false() -> None:
    assert not holds("term > :zero", LEASE, {}, {":zero": {"N": "0"}})
    assert not holds("term = :zero", LEASE, {}, {":zero": {"N": "0"}})


def test_set_and_add() -> None:
    values = {":me": {"S": "b"}, ":one": {"N": "1"}}
    once = update("SET holder = :me ADD term :one", LEASE, {}, values)
    twice = update("SET holder = :me ADD term :one", once, {}, values)
    assert twice["holder"] == {"S": "b"}
    assert twice["term"] == {"N": "2"}
    assert LEASE["holder"] == {"S": "a"}, "the item given is left as it was"


@pytest.mark.parametrize(
    "text", ["holder = ", "contains(holder, :v)", "holder = :missing", "#unknown = :v"]
)
def test_what_is_not_understood_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        holds(text, LEASE, {}, {":v": {"S": "a"}})
