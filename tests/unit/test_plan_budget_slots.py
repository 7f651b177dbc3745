"""Which slots of the shared disruption budget are in use, and which one a drain may take."""

from __future__ import annotations

from scaler.plan.budget_slots import Slot, busy_indices, candidates, in_use

T0 = 1_800_000_000.0
SKEW = 5.0


def slot(index: int, iid: str, taken: float = T0, expires: float = T0 + 900) -> Slot:
    return Slot(index, iid, "r0", taken, expires)


def test_a_slot_is_in_use_until_its_instances_tasks_have_moved() -> None:
    s = slot(0, "i-1")
    assert in_use(s, T0 + 10, {"i-1": False}, T0 + 5, SKEW)  # ACTIVE still, or tasks moving
    assert not in_use(s, T0 + 10, {"i-1": True}, T0 + 5, SKEW)  # DRAINING, no task left


def test_an_expired_slot_is_free_whatever_its_instance_does() -> None:
    assert not in_use(slot(0, "i-1"), T0 + 900, {"i-1": False}, T0 + 899, SKEW)


def test_an_unknown_instance_holds_its_slot_until_the_readers_view_is_newer() -> None:
    """Taken by another replica for an instance this one has not seen yet: in use; once the
    reader's view was read well after the slot was taken, the instance is gone."""
    s = slot(0, "i-new", taken=T0 + 100)
    assert in_use(s, T0 + 101, {}, T0 + 98, SKEW)  # read before the slot was taken
    assert in_use(s, T0 + 104, {}, T0 + 103, SKEW)  # within the clock skew
    assert not in_use(s, T0 + 120, {}, T0 + 110, SKEW)


def test_a_drain_takes_its_own_slot_first_then_the_lowest_free_one() -> None:
    slots = [slot(0, "i-1"), slot(2, "i-3"), slot(3, "i-4")]
    assert candidates("i-3", slots, busy={0, 3}, budget=4) == [(2, slots[1]), (1, None)]
    assert candidates("i-9", slots, busy={0, 2}, budget=4) == [(1, None), (3, slots[2])]
    assert candidates("i-9", slots, busy={0, 1, 2, 3}, budget=4) == []


def test_slots_above_a_shrunk_budget_are_not_offered() -> None:
    assert candidates("i-9", [], busy=set(), budget=2) == [(0, None), (1, None)]


def test_busy_indices_are_the_slots_in_use() -> None:
    slots = [slot(0, "i-1"), slot(1, "i-2"), slot(2, "i-3", expires=T0)]
    moved = {"i-1": False, "i-2": True, "i-3": False}
    assert busy_indices(slots, T0 + 1, moved, T0, SKEW) == {0}
