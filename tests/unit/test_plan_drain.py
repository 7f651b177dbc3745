"""Drain decisions for every signal and policy, as plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.events import (
    InstanceStateChange,
    LifecycleTerminate,
    RebalanceRecommendation,
    ScheduledChange,
    Signal,
    SpotInterruption,
    TaskStateChange,
)
from scaler.model import ContainerInstance
from scaler.plan.drain import (
    Decision,
    Deregister,
    Drain,
    DrainPolicy,
    FollowLifecycle,
    GatedDrain,
    LifecycleAction,
    ReplaceThenDrain,
    SurgeThenDrain,
    decide,
    final_reason,
)
from scaler.settings import RebalancePolicy

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T = NOW - timedelta(seconds=3)
ACTIVE = ContainerInstance("arn:ci/1", "i-1", "ACTIVE")
DRAINING = ContainerInstance("arn:ci/2", "i-2", "DRAINING")


def members(*cis: ContainerInstance) -> dict[str, ContainerInstance]:
    return {ci.ec2_instance_id: ci for ci in cis}


def spot(iid: str = "i-1") -> SpotInterruption:
    return SpotInterruption(event_id="e", time=T, instance_id=iid, action="terminate")


def test_spot_warning_drains_now() -> None:
    d = decide(spot(), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == (Drain(ACTIVE, "spot_interruption", T),)
    assert d.defer is None


def test_with_the_warning_surge_a_spot_warning_drains_once_its_services_surged() -> None:
    policy = DrainPolicy(warning_surge=True)
    d = decide(spot(), members(ACTIVE, DRAINING), policy, NOW)
    assert d.actions == (SurgeThenDrain(ACTIVE, "spot_interruption", T, T),)
    untimed = SpotInterruption(event_id="e", time=None, instance_id="i-1", action="terminate")
    assert decide(untimed, members(ACTIVE), policy, NOW).actions[0] == SurgeThenDrain(
        ACTIVE, "spot_interruption", None, NOW
    )


def test_an_instance_already_draining_is_not_drained_again() -> None:
    d = decide(spot("i-2"), members(DRAINING), DrainPolicy(), NOW)
    assert d.actions == ()
    assert "already draining" in d.why


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RebalancePolicy.IGNORE, ()),
        (RebalancePolicy.DRAIN, (GatedDrain(ACTIVE, "rebalance_recommendation", T),)),
        (
            RebalancePolicy.REPLACE_THEN_DRAIN,
            (ReplaceThenDrain(ACTIVE, "rebalance_recommendation", T, 300.0),),
        ),
    ],
)
def test_rebalance_follows_the_policy(policy: RebalancePolicy, expected: tuple[object]) -> None:
    signal = RebalanceRecommendation(event_id="e", time=T, instance_id="i-1")
    assert decide(signal, members(ACTIVE), DrainPolicy(rebalance=policy), NOW).actions == expected


def _lifecycle(iid: str) -> LifecycleTerminate:
    return LifecycleTerminate(
        event_id="e",
        time=T,
        instance_id=iid,
        group_name="asg",
        hook_name="hook",
        token="tok",
        transition="autoscaling:EC2_INSTANCE_TERMINATING",
    )


def test_lifecycle_drains_then_follows() -> None:
    action = LifecycleAction("asg", "hook", "tok", "i-1")
    d = decide(_lifecycle("i-1"), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == (Drain(ACTIVE, "lifecycle_terminate", T), FollowLifecycle(ACTIVE, action))


def test_lifecycle_of_a_draining_instance_is_still_followed() -> None:
    d = decide(_lifecycle("i-2"), members(DRAINING), DrainPolicy(), NOW)
    assert d.actions == (FollowLifecycle(DRAINING, LifecycleAction("asg", "hook", "tok", "i-2")),)


@pytest.mark.parametrize("state", ["stopping", "shutting-down", "stopped"])
def test_leaving_states_drain(state: str) -> None:
    signal = InstanceStateChange(event_id="e", time=T, instance_id="i-1", state=state)
    assert decide(signal, members(ACTIVE), DrainPolicy(), NOW).actions == (
        Drain(ACTIVE, "instance_state", T),
    )


def test_terminated_deregisters_even_when_draining() -> None:
    signal = InstanceStateChange(event_id="e", time=T, instance_id="i-2", state="terminated")
    d = decide(signal, members(DRAINING), DrainPolicy(), NOW)
    assert d.actions == (Deregister(DRAINING, "instance_terminated"),)


@pytest.mark.parametrize("state", ["pending", "running"])
def test_arriving_states_do_nothing(state: str) -> None:
    signal = InstanceStateChange(event_id="e", time=T, instance_id="i-1", state=state)
    assert decide(signal, members(ACTIVE), DrainPolicy(), NOW) == Decision(
        why=f"instance {state}: nothing to do"
    )


def _scheduled(
    start: datetime | None,
    code: str = "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
    end: datetime | None = None,
) -> ScheduledChange:
    return ScheduledChange(
        event_id="e",
        time=T,
        instance_ids=("i-1",),
        start_time=start,
        end_time=end,
        event_type_code=code,
    )


def test_scheduled_change_far_ahead_is_deferred_until_the_lead() -> None:
    d = decide(_scheduled(NOW + timedelta(hours=3)), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == ()
    assert d.defer == pytest.approx(3 * 3600 - 1800)


@pytest.mark.parametrize("start", [NOW + timedelta(minutes=20), NOW - timedelta(hours=1), None])
def test_scheduled_change_within_the_lead_drains_now(start: datetime | None) -> None:
    d = decide(_scheduled(start), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == (Drain(ACTIVE, "scheduled_change", T),)


@pytest.mark.parametrize(
    "code",
    [
        "AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED",
        "AWS_EC2_SYSTEM_REBOOT_MAINTENANCE_SCHEDULED",
        "AWS_EC2_INSTANCE_REBOOT_FLEXIBLE_MAINTENANCE_SCHEDULED",
    ],
)
def test_a_reboot_drains_until_its_window_ends(code: str) -> None:
    start, end = NOW + timedelta(minutes=20), NOW + timedelta(hours=2)
    d = decide(_scheduled(start, code, end), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == (Drain(ACTIVE, "scheduled_reboot", T, undo_at=end),)
    # no end announced: the drain is undone SCALER_UNDRAIN_AFTER after the start
    d = decide(_scheduled(start, code), members(ACTIVE), DrainPolicy(undrain_after=600), NOW)
    assert d.actions == (
        Drain(ACTIVE, "scheduled_reboot", T, undo_at=start + timedelta(seconds=600)),
    )
    assert final_reason(_scheduled(start, code, end)) is None


@pytest.mark.parametrize(
    "code", ["AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", "AWS_EC2_INSTANCE_STOP_SCHEDULED"]
)
def test_a_retirement_or_stop_is_final(code: str) -> None:
    d = decide(_scheduled(NOW, code, NOW + timedelta(hours=1)), members(ACTIVE), DrainPolicy(), NOW)
    assert d.actions == (Drain(ACTIVE, "scheduled_change", T),)
    assert final_reason(_scheduled(NOW, code)) == "scheduled_change"


def test_which_signals_are_final() -> None:
    assert final_reason(spot()) == "spot_interruption"
    assert final_reason(_lifecycle("i-1")) == "lifecycle_terminate"
    assert (
        final_reason(InstanceStateChange(event_id="e", time=T, instance_id="i-1", state="stopping"))
        == "instance_state"
    )
    assert (
        final_reason(InstanceStateChange(event_id="e", time=T, instance_id="i-1", state="running"))
        is None
    )
    assert final_reason(RebalanceRecommendation(event_id="e", time=T, instance_id="i-1")) is None


def test_signals_without_a_drain_meaning_do_nothing() -> None:
    signal = TaskStateChange(
        event_id="e",
        time=T,
        cluster_arn="c",
        task_arn="t",
        last_status="RUNNING",
        desired_status="RUNNING",
        stop_code=None,
        group=None,
        container_instance_arn=None,
        version=1,
    )
    assert decide(signal, members(ACTIVE), DrainPolicy(), NOW).actions == ()


# -- properties ------------------------------------------------------------------------------

instances = st.builds(
    ContainerInstance,
    arn=st.text(min_size=1, max_size=5).map(lambda s: f"arn:ci/{s}"),
    ec2_instance_id=st.sampled_from([f"i-{n}" for n in range(6)]),
    status=st.sampled_from(["ACTIVE", "DRAINING"]),
)
signals = st.one_of(
    st.builds(
        SpotInterruption,
        event_id=st.just("e"),
        time=st.none(),
        instance_id=st.sampled_from([f"i-{n}" for n in range(6)]),
        action=st.just("stop"),
    ),
    st.builds(
        RebalanceRecommendation,
        event_id=st.just("e"),
        time=st.none(),
        instance_id=st.sampled_from([f"i-{n}" for n in range(6)]),
    ),
    st.builds(
        InstanceStateChange,
        event_id=st.just("e"),
        time=st.none(),
        instance_id=st.sampled_from([f"i-{n}" for n in range(6)]),
        state=st.sampled_from(
            ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
        ),
    ),
)


@given(signals, st.lists(instances, max_size=6), st.sampled_from(list(RebalancePolicy)))
def test_decisions_touch_only_members_and_never_redrain(
    signal: Signal, cis: list[ContainerInstance], policy: RebalancePolicy
) -> None:
    known = {ci.ec2_instance_id: ci for ci in cis}
    d = decide(signal, known, DrainPolicy(rebalance=policy), NOW)
    for action in d.actions:
        assert action.instance in known.values()
        if isinstance(action, Drain | ReplaceThenDrain | GatedDrain):
            assert not action.instance.draining
    # deciding again on the state the actions leave behind asks for no new drain
    after = {
        iid: ContainerInstance(ci.arn, iid, "DRAINING")
        if any(isinstance(a, Drain) and a.instance == ci for a in d.actions)
        else ci
        for iid, ci in known.items()
    }
    again = decide(signal, after, DrainPolicy(rebalance=policy), NOW)
    assert not any(isinstance(a, Drain) for a in again.actions)


@given(st.lists(instances, max_size=6), st.sampled_from(list(RebalancePolicy)))
def test_interruption_warnings_always_drain_at_once(
    cis: list[ContainerInstance], policy: RebalancePolicy
) -> None:
    known = {ci.ec2_instance_id: ci for ci in cis}
    for iid in known:
        d = decide(spot(iid), {iid: known[iid]}, DrainPolicy(rebalance=policy), NOW)
        assert d.defer is None
        assert all(isinstance(a, Drain) and a.undo_at is None for a in d.actions)
        assert len(d.actions) == (0 if known[iid].draining else 1)
