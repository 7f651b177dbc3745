"""Recommendation drains admitted within the disruption budget, and only where there is room."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaler.plan.drain_budget import Member, Waiting, admit, still_within
from scaler.plan.roll import disruption_budget

T0 = 1_800_000_000.0


def member(iid: str, free: int = 4096, status: str = "ACTIVE", disrupting: bool = False) -> Member:
    return Member(iid, status, free, free, disrupting)


def cluster(n: int, free: int = 4096) -> list[Member]:
    return [member(f"i-{k}", free) for k in range(n)]


def test_a_burst_drains_no_more_than_the_budget_oldest_first() -> None:
    waiting = [Waiting(f"i-{k}", T0 + 10 - k, 1024, 1024) for k in range(10)]
    result = admit(waiting, cluster(20), share=0.1, now=T0 + 20, expire_after=1200)
    assert result.drain == ("i-9", "i-8")  # 10% of 20; the oldest recommendations first
    assert set(result.held) == {f"i-{k}" for k in range(8)}
    assert all("disruption budget" in why for why in result.held.values())


def test_drains_in_flight_use_the_budget() -> None:
    members = [*cluster(9), member("i-9", status="DRAINING", disrupting=True)]
    result = admit([Waiting("i-0", T0, 0, 0)], members, share=0.1, now=T0, expire_after=1200)
    assert result.drain == ()
    assert result.held == {"i-0": "disruption budget in use (1 of 1 instances)"}


def test_an_instance_whose_tasks_have_no_room_elsewhere_waits() -> None:
    members = [member("i-0", free=0), member("i-1", free=1000), member("i-2", free=0)]
    waiting = [Waiting("i-0", T0, 2048, 512)]
    result = admit(waiting, members, share=1.0, now=T0, expire_after=1200)
    assert result.drain == ()
    assert result.held == {"i-0": "no room elsewhere for its tasks (CPU 2048 > 1000 free)"}
    # a replacement registers: now there is room
    grown = [*members, member("i-3", free=4096)]
    assert admit(waiting, grown, share=1.0, now=T0, expire_after=1200).drain == ("i-0",)


def test_room_is_not_promised_twice() -> None:
    members = [member("i-0", free=0), member("i-1", free=0), member("i-2", free=3000)]
    waiting = [Waiting("i-0", T0, 2000, 100), Waiting("i-1", T0 + 1, 2000, 100)]
    result = admit(waiting, members, share=1.0, now=T0, expire_after=1200)
    assert result.drain == ("i-0",)
    assert "no room" in result.held["i-1"]


def test_a_recommendation_held_past_its_time_is_dropped() -> None:
    members = [*cluster(3), member("i-9", status="DRAINING", disrupting=True)]
    waiting = [Waiting("i-0", T0, 0, 0), Waiting("i-1", T0 + 100, 0, 0)]
    result = admit(waiting, members, share=0.1, now=T0 + 1200, expire_after=1200)
    assert result.expired == ("i-0",)
    assert set(result.held) == {"i-1"}


members_st = st.lists(
    st.builds(
        Member,
        st.sampled_from([f"i-{k}" for k in range(12)]),
        st.sampled_from(["ACTIVE", "DRAINING"]),
        st.integers(0, 4096),
        st.integers(0, 8192),
        st.booleans(),
    ),
    unique_by=lambda m: m.instance_id,
    max_size=12,
)
waiting_st = st.lists(
    st.builds(
        Waiting,
        st.sampled_from([f"i-{k}" for k in range(12)]),
        st.floats(T0, T0 + 1000),
        st.integers(0, 4096),
        st.integers(0, 8192),
    ),
    unique_by=lambda w: w.instance_id,
    max_size=12,
)


@given(waiting_st, members_st, st.floats(0.01, 1.0))
def test_the_budget_and_the_room_are_never_exceeded(
    waiting: list[Waiting], members: list[Member], share: float
) -> None:
    result = admit(waiting, members, share, now=T0 + 1000, expire_after=5000)
    live = sum(1 for m in members if m.status in ("ACTIVE", "DRAINING"))
    in_flight = sum(1 for m in members if m.disrupting)
    assert in_flight + len(result.drain) <= max(disruption_budget(share, live), in_flight)
    asked = {w.instance_id: w for w in waiting}
    hosts = [
        m
        for m in members
        if m.status == "ACTIVE" and not m.disrupting and m.instance_id not in asked
    ]
    assert sum(asked[i].cpu for i in result.drain) <= sum(m.free_cpu for m in hosts)
    assert sum(asked[i].memory for i in result.drain) <= sum(m.free_memory for m in hosts)
    # every waiting instance is drained, held or dropped: exactly one of them
    decided = [*result.drain, *result.held, *result.expired]
    assert sorted(decided) == sorted(asked)


def test_an_admission_holds_only_while_the_shrunk_budget_does() -> None:
    """Two admitted at 20 instances (a budget of two); at 17 the budget is one: the first to
    drain finds the other admitted one filling it, and once it waits again the other goes."""
    members = [member(f"i-{k:02}", disrupting=k < 2) for k in range(17)]
    assert not still_within("i-00", members, 0.1)
    members[0] = member("i-00")  # given back: waiting again
    assert still_within("i-01", members, 0.1)
    assert still_within("i-00", [member(f"i-{k:02}", disrupting=k < 2) for k in range(20)], 0.1)


@given(st.integers(2, 60), st.integers(0, 8), st.sampled_from([0.1, 0.25, 0.5]))
def test_what_still_holds_never_exceeds_the_budget(
    live: int, disrupting: int, share: float
) -> None:
    members = [member(f"i-{k:02}", disrupting=k < disrupting) for k in range(live)]
    held = [
        m.instance_id
        for m in members
        if m.disrupting and still_within(m.instance_id, members, share)
    ]
    assert not held or disrupting <= disruption_budget(share, live)
