"""Which drains the scaler undoes, and which DRAINING instances it stops counting as doomed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaler.plan.undrain import (
    REVERSIBLE,
    Drained,
    Mark,
    Undo,
    parse_mark,
    reactivations,
    stale_draining,
)

T0 = 1_800_000_000.0


def rec(iid: str, at: float = T0, until: float = T0 + 1200, status: str = "DRAINING") -> Drained:
    return Drained(iid, status, Mark("rebalance_recommendation", at, until))


def test_a_mark_reads_back_what_was_written() -> None:
    mark = Mark("scheduled_reboot", 1_800_000_000, 1_800_003_600)
    assert mark.text == "scheduled_reboot@1800000000/1800003600"
    assert parse_mark(mark.text) == mark
    for junk in ("", "nonsense", "x@1", "x@a/b", "@1/2"):
        assert parse_mark(junk) is None


def test_a_recommendation_drain_is_undone_once_its_time_has_come() -> None:
    drained = [rec("i-1"), rec("i-2", until=T0 + 5000)]
    assert reactivations(drained, {}, T0 + 1199) == ()
    assert reactivations(drained, {}, T0 + 1200) == (
        Undo("i-1", "rebalance_recommendation", activate=True),
    )


def test_a_hand_drained_instance_is_never_reactivated() -> None:
    assert reactivations([Drained("i-1", "DRAINING", None)], {}, T0 + 10**6) == ()


def test_a_later_warning_keeps_the_instance_draining() -> None:
    # a spot warning (or lifecycle action, or state change) heard for it: it stays, whatever the
    # order in which the warning and the recommendation were raised
    assert reactivations([rec("i-1")], {"i-1": T0 + 60}, T0 + 2000) == ()
    assert reactivations([rec("i-1")], {"i-1": T0 - 60}, T0 + 2000) == ()


def test_final_reasons_are_never_undone() -> None:
    final = Drained("i-1", "DRAINING", Mark("spot_interruption", T0, T0))
    assert reactivations([final], {}, T0 + 10**6) == ()


def test_an_active_instance_keeps_no_stale_mark() -> None:
    # set ACTIVE by hand, or the mark's removal failed: only the mark goes
    assert reactivations([rec("i-1", status="ACTIVE")], {}, T0 + 1200) == (
        Undo("i-1", "rebalance_recommendation", activate=False),
    )


marks = st.one_of(
    st.none(),
    st.builds(
        Mark,
        st.sampled_from([*REVERSIBLE, "spot_interruption", "lifecycle_terminate"]),
        st.floats(T0 - 5000, T0 + 5000),
        st.floats(T0 - 5000, T0 + 10000),
    ),
)
drained_sets = st.lists(
    st.builds(
        Drained,
        st.sampled_from([f"i-{n}" for n in range(8)]),
        st.sampled_from(["ACTIVE", "DRAINING"]),
        marks,
    ),
    unique_by=lambda d: d.instance_id,
    max_size=8,
)
finals = st.dictionaries(
    st.sampled_from([f"i-{n}" for n in range(8)]), st.floats(T0 - 5000, T0 + 10000)
)


@given(drained_sets, finals, st.floats(T0 - 5000, T0 + 20000))
def test_only_own_due_unwarned_drains_are_undone(
    drained: list[Drained], final: dict[str, float], now: float
) -> None:
    by_id = {d.instance_id: d for d in drained}
    undo = reactivations(drained, final, now)
    assert len({u.instance_id for u in undo}) == len(undo)
    for u in undo:
        d = by_id[u.instance_id]
        assert d.mark is not None, "never one without the scaler's mark (drained by hand)"
        assert d.mark.reason in REVERSIBLE
        assert now >= d.mark.until, "never before its time"
        assert u.activate == (d.status == "DRAINING")
        if u.activate:
            assert d.instance_id not in final, "never once a warning was heard"
    # and every one that qualifies is undone
    due = {
        d.instance_id
        for d in drained
        if d.status == "DRAINING"
        and d.mark is not None
        and d.mark.reason in REVERSIBLE
        and now >= d.mark.until
        and d.instance_id not in final
    }
    assert {u.instance_id for u in undo if u.activate} == due


# -- stale DRAINING instances ---------------------------------------------------------------


def test_draining_past_the_timeout_without_a_live_reason_is_stale() -> None:
    since = {"i-1": T0, "i-2": T0, "i-3": T0 + 500}
    live = {"i-2": "spot notice"}
    marks = {"i-1": None, "i-2": None, "i-3": None}
    stale = stale_draining(since, marks, live, T0 + 901, timeout=900)
    assert stale == {"i-1": "drained outside the scaler (no scaler mark)"}


def test_a_stale_reason_names_the_scalers_own_mark() -> None:
    mark = Mark("spot_interruption", T0, T0)
    stale = stale_draining({"i-1": T0 + 100}, {"i-1": mark}, {}, T0 + 1001, timeout=900)
    assert stale == {"i-1": "drained by the scaler for spot_interruption"}


@given(
    st.dictionaries(st.sampled_from([f"i-{n}" for n in range(6)]), st.floats(0, 5000)),
    st.dictionaries(st.sampled_from([f"i-{n}" for n in range(6)]), st.just("spot notice")),
    st.floats(0, 10000),
    st.floats(1, 3000),
)
def test_nothing_with_a_live_reason_or_young_is_stale(
    since: dict[str, float], live: dict[str, str], now: float, timeout: float
) -> None:
    stale = stale_draining(since, {}, live, now, timeout)
    for iid in stale:
        assert iid not in live
        assert now - since[iid] > timeout
    assert set(stale) == {i for i, s in since.items() if i not in live and now - s > timeout}
