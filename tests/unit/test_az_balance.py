"""Removals keep an Auto Scaling group's AZs within one instance of each other."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from scaler.plan.az_balance import balanced_removals, spread

AZS = ("a", "b", "c")


def test_the_long_az_loses_first() -> None:
    counts = {"a": 2, "b": 1}
    assert balanced_removals(counts, [("b1", "b"), ("a1", "a"), ("a2", "a")]) == ["a1", "a2"]
    assert balanced_removals({"a": 1, "b": 1, "c": 0}, [("c1", "c")]) == []


@st.composite
def groups(draw: st.DrawFn) -> tuple[dict[str, int], list[tuple[str, str]]]:
    azs = draw(st.lists(st.sampled_from(AZS), min_size=1, max_size=3, unique=True))
    low = draw(st.integers(0, 5))
    counts = {az: low + draw(st.integers(0, 1)) for az in azs}
    members = [(f"{az}{i}", az) for az in azs for i in range(counts[az])]
    order = draw(st.permutations(members))
    return counts, list(order[: draw(st.integers(0, len(order)))])


@given(groups())
def test_a_balanced_group_stays_balanced_removal_after_removal(
    group: tuple[dict[str, int], list[tuple[str, str]]],
) -> None:
    counts, candidates = group
    assert spread(counts) <= 1
    left = Counter(counts)
    az_of = dict(candidates)
    for instance in balanced_removals(counts, candidates):
        left[az_of[instance]] -= 1
        assert min(left.values()) >= 0
        assert spread(left) <= 1
