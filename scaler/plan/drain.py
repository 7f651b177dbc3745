"""Which container instances to drain, and when, for each kind of signal.

:func:`decide` maps one signal and the container instances it concerns to a :class:`Decision`:

========================  =====================================================================
spot interruption         drain now (the instance has two minutes left); with the warning surge
                          (``SCALER_WARNING_SURGE``) drain once its services surged, by a
                          deadline (:mod:`scaler.plan.warning_surge`)
rebalance recommendation  the operator's policy: ignore, drain, or replace-then-drain (drain once
                          replacement capacity is ready or a timeout passes); either drain waits
                          for the disruption budget and room (:mod:`scaler.plan.drain_budget`)
ASG terminate lifecycle   drain, then follow the action: heartbeat while service tasks remain,
                          complete it with CONTINUE when none remain or the drain timeout passes
state change              stopping / shutting-down / stopped: drain; terminated: deregister the
                          container instance (force), so ECS stops counting on it
scheduled change          drain ``scheduled_drain_lead`` before the start time; until then defer.
                          A reboot (``eventTypeCode`` with ``_REBOOT_``) is undone once its
                          window ends (:mod:`scaler.plan.undrain`); a retirement or stop is final
========================  =====================================================================

Spot interruption warnings, lifecycle actions, stopping or terminated instances and scheduled
retirements are *final* (:func:`final_reason`): they drain at once, and a reversible drain of the
same instance is never undone after one of them.

An instance already DRAINING is not drained again (ECS would accept it, but the call would be
wasted); a lifecycle action is still followed and a terminated instance still deregistered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from scaler.events import (
    InstanceStateChange,
    LifecycleTerminate,
    RebalanceRecommendation,
    ScheduledChange,
    Signal,
    SpotInterruption,
)
from scaler.model import ContainerInstance
from scaler.settings import RebalancePolicy, Settings

DRAIN_STATES = frozenset({"stopping", "shutting-down", "stopped"})
GONE_STATES = frozenset({"terminated"})


@dataclass(frozen=True)
class DrainPolicy:
    """The settings drain decisions depend on."""

    rebalance: RebalancePolicy = RebalancePolicy.DRAIN
    replacement_timeout: float = 300.0
    scheduled_lead: float = 1800.0
    undrain_after: float = 1200.0
    warning_surge: bool = False  # a spot warning's drain waits for its services' surges
    warning_stop_time: float = 30.0  # seconds before the interruption it drains at the latest

    @classmethod
    def from_settings(cls, settings: Settings) -> DrainPolicy:
        return cls(
            rebalance=settings.rebalance_policy,
            replacement_timeout=settings.replacement_timeout,
            scheduled_lead=settings.scheduled_drain_lead,
            undrain_after=settings.undrain_after,
            warning_surge=settings.warning_surge,
            warning_stop_time=settings.warning_surge_stop_time,
        )


@dataclass(frozen=True)
class Drain:
    instance: ContainerInstance
    reason: str
    since: datetime | None  # when the signal was raised, for the latency metric
    undo_at: datetime | None = None  # reversible: set ACTIVE again from then, unless warned


@dataclass(frozen=True)
class GatedDrain:
    """A recommendation drain: waits for the disruption budget and room, then drains (marked
    reversible), or is dropped when it has waited ``undrain_after``."""

    instance: ContainerInstance
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class SurgeThenDrain:
    """A spot warning's drain once its services surged (or by its deadline): ``warned_at``
    (the warning's time, or when it arrived) starts the two minutes."""

    instance: ContainerInstance
    reason: str
    since: datetime | None
    warned_at: datetime


@dataclass(frozen=True)
class Deregister:
    instance: ContainerInstance
    reason: str


@dataclass(frozen=True)
class ReplaceThenDrain:
    instance: ContainerInstance
    reason: str
    since: datetime | None
    timeout: float


@dataclass(frozen=True)
class LifecycleAction:
    """An Auto Scaling lifecycle action to complete once the instance has drained."""

    group: str
    hook: str
    token: str
    instance_id: str


@dataclass(frozen=True)
class FollowLifecycle:
    instance: ContainerInstance
    action: LifecycleAction


Action = Drain | Deregister | ReplaceThenDrain | GatedDrain | FollowLifecycle | SurgeThenDrain


@dataclass(frozen=True)
class Decision:
    """What to do about one signal. ``defer`` (seconds) asks to see the signal again later."""

    actions: tuple[Action, ...] = ()
    why: str = ""
    defer: float | None = None


def decide(
    signal: Signal,
    members: Mapping[str, ContainerInstance],
    policy: DrainPolicy,
    now: datetime,
) -> Decision:
    """The drain decision for ``signal``; ``members`` maps its instance ids in this cluster."""
    if isinstance(signal, SpotInterruption) and policy.warning_surge:
        return _surge_then_drain(signal, members, now)
    if isinstance(signal, SpotInterruption):
        return _drain_all(members, "spot_interruption", signal.time, "spot interruption warning")
    if isinstance(signal, RebalanceRecommendation):
        return _rebalance(signal, members, policy)
    if isinstance(signal, LifecycleTerminate):
        return _lifecycle(signal, members)
    if isinstance(signal, InstanceStateChange):
        return _state_change(signal, members)
    if isinstance(signal, ScheduledChange):
        return _scheduled(signal, members, policy, now)
    return Decision(why=f"no drain action for {signal.KIND}")


def final_reason(signal: Signal) -> str | None:
    """The drain reason of a signal after which an instance is not coming back; None for the
    others (a recommendation, a reboot, a state that does not end the instance)."""
    if isinstance(signal, SpotInterruption):
        return "spot_interruption"
    if isinstance(signal, LifecycleTerminate):
        return "lifecycle_terminate"
    if isinstance(signal, InstanceStateChange) and signal.state in DRAIN_STATES | GONE_STATES:
        return "instance_state"
    if isinstance(signal, ScheduledChange) and not is_reboot(signal):
        return "scheduled_change"
    return None


def is_reboot(signal: ScheduledChange) -> bool:
    """A scheduled change after which the instance comes back (e.g.
    ``AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED``, ``AWS_EC2_SYSTEM_REBOOT_...``)."""
    return "_REBOOT_" in signal.event_type_code.upper()


def _drain_all(
    members: Mapping[str, ContainerInstance], reason: str, since: datetime | None, why: str
) -> Decision:
    todo = tuple(Drain(ci, reason, since) for ci in _sorted(members) if not ci.draining)
    if not todo:
        return Decision(why=f"{why}: already draining")
    return Decision(todo, why=why)


def _surge_then_drain(
    signal: SpotInterruption, members: Mapping[str, ContainerInstance], now: datetime
) -> Decision:
    why = "spot interruption warning"
    warned_at = signal.time or now
    todo = tuple(
        SurgeThenDrain(ci, "spot_interruption", signal.time, warned_at)
        for ci in _sorted(members)
        if not ci.draining
    )
    if not todo:
        return Decision(why=f"{why}: already draining")
    return Decision(todo, why=f"{why}: drain once its services surged")


def _rebalance(
    signal: RebalanceRecommendation, members: Mapping[str, ContainerInstance], policy: DrainPolicy
) -> Decision:
    reason = "rebalance_recommendation"
    if policy.rebalance is RebalancePolicy.IGNORE:
        return Decision(why="rebalance recommendation ignored by policy")
    if policy.rebalance is RebalancePolicy.DRAIN:
        gated = tuple(
            GatedDrain(ci, reason, signal.time) for ci in _sorted(members) if not ci.draining
        )
        if not gated:
            return Decision(why="rebalance recommendation: already draining")
        return Decision(gated, why="rebalance recommendation: drain within the budget")
    todo = tuple(
        ReplaceThenDrain(ci, reason, signal.time, policy.replacement_timeout)
        for ci in _sorted(members)
        if not ci.draining
    )
    return Decision(todo, why="rebalance recommendation: replace, then drain")


def _lifecycle(signal: LifecycleTerminate, members: Mapping[str, ContainerInstance]) -> Decision:
    ci = members.get(signal.instance_id)
    if ci is None:
        return Decision(why="lifecycle action for an instance outside the cluster")
    action = LifecycleAction(signal.group_name, signal.hook_name, signal.token, signal.instance_id)
    drain = () if ci.draining else (Drain(ci, "lifecycle_terminate", signal.time),)
    return Decision((*drain, FollowLifecycle(ci, action)), why="terminate lifecycle action")


def _state_change(
    signal: InstanceStateChange, members: Mapping[str, ContainerInstance]
) -> Decision:
    if signal.state in GONE_STATES:
        gone = tuple(Deregister(ci, "instance_terminated") for ci in _sorted(members))
        return Decision(gone, why=f"instance {signal.state}")
    if signal.state in DRAIN_STATES:
        return _drain_all(members, "instance_state", signal.time, f"instance {signal.state}")
    return Decision(why=f"instance {signal.state}: nothing to do")


def _scheduled(
    signal: ScheduledChange,
    members: Mapping[str, ContainerInstance],
    policy: DrainPolicy,
    now: datetime,
) -> Decision:
    if signal.start_time is not None:
        wait = (signal.start_time - now).total_seconds() - policy.scheduled_lead
        if wait > 0:
            return Decision(
                why=f"scheduled change starts {signal.start_time.isoformat()}", defer=wait
            )
    if not is_reboot(signal):
        return _drain_all(members, "scheduled_change", signal.time, "scheduled change")
    undo_at = signal.end_time or (signal.start_time or now) + timedelta(
        seconds=policy.undrain_after
    )
    todo = tuple(
        Drain(ci, "scheduled_reboot", signal.time, undo_at)
        for ci in _sorted(members)
        if not ci.draining
    )
    return Decision(todo, why=f"scheduled reboot: drained until {undo_at.isoformat()}")


def _sorted(members: Mapping[str, ContainerInstance]) -> list[ContainerInstance]:
    return [members[k] for k in sorted(members)]
