"""A group's own replacements of instances the scaler had replaced already."""

from __future__ import annotations

from scaler.aws.replaced import GroupState, Replacements


def _after_notice(memory: Replacements) -> None:
    """Instances a and x; x under a notice, replaced ahead by r: desired 3."""
    memory.observe("g", frozenset({"a", "x"}), now=0.0)
    memory.record("g", GroupState(frozenset({"a", "x"}), frozenset({"x"}), desired=3))
    memory.observe("g", frozenset({"a", "x", "r"}), now=10.0)
    memory.record("g", GroupState(frozenset({"a", "x", "r"}), frozenset({"x"}), desired=3))


def test_a_group_replacing_a_lost_instance_leaves_a_surplus() -> None:
    memory = Replacements()
    _after_notice(memory)
    assert memory.excess("g") == 0
    memory.observe("g", frozenset({"a", "r", "y"}), now=20.0)  # x reclaimed, y its replacement
    assert memory.excess("g") == 1 and memory.unreplaced("g", now=1e9) == 0
    memory.removed("g")
    assert memory.excess("g") == 0


def test_a_lost_instance_the_group_does_not_replace_is_given_back_after_the_grace() -> None:
    memory = Replacements(grace=60.0)
    _after_notice(memory)
    memory.observe("g", frozenset({"a", "r"}), now=20.0)
    assert memory.excess("g") == 0
    assert memory.unreplaced("g", now=50.0) == 0 and memory.unreplaced("g", now=80.0) == 1
    memory.given_back("g", 1)
    assert memory.unreplaced("g", now=80.0) == 0


def test_an_instance_the_scaler_terminated_itself_is_not_lost() -> None:
    memory = Replacements()
    _after_notice(memory)
    memory.let_go.add("x")  # terminated with the desired capacity decremented
    memory.observe("g", frozenset({"a", "r"}), now=20.0)
    assert memory.unreplaced("g", now=1e9) == 0 and memory.excess("g") == 0


def test_an_instance_the_group_was_asked_for_is_no_surplus() -> None:
    memory = Replacements()
    memory.observe("g", frozenset({"a", "x"}), now=0.0)
    # x left and a launch was asked for in the same cycle (desired 3 over 2 live)
    memory.record("g", GroupState(frozenset({"a", "x"}), frozenset({"x"}), desired=3))
    memory.observe("g", frozenset({"a", "r"}), now=10.0)
    assert memory.excess("g") == 0 and memory.unreplaced("g", now=1e9) == 1


def test_what_is_not_settled_is_forgotten() -> None:
    memory = Replacements()
    _after_notice(memory)
    memory.observe("g", frozenset({"a", "r"}), now=20.0)
    memory.record("g", GroupState(frozenset({"a", "r"}), frozenset(), desired=3))
    memory.observe("g", frozenset({"a", "r"}), now=20.0 + 600.0)
    assert memory.unreplaced("g", now=1e9) == 0


def test_an_instance_terminated_in_a_later_group_is_not_lost() -> None:
    memory = Replacements()
    memory.observe("f", frozenset({"b"}), now=0.0)
    memory.record("f", GroupState(frozenset({"b"}), frozenset(), desired=1))
    _after_notice(memory)
    memory.let_go.add("x")  # g's x terminated with the desired capacity decremented
    memory.observe("f", frozenset({"b"}), now=20.0)  # another group's cycle comes first
    memory.observe("g", frozenset({"a", "r"}), now=20.0)
    assert memory.unreplaced("g", now=1e9) == 0 and memory.excess("g") == 0
    assert "x" not in memory.let_go
