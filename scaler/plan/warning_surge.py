"""Replacement first at a spot interruption warning: raise the counts, drain late, set back.

Draining an instance makes ECS stop the tasks there of each service whose
``minimumHealthyPercent`` is under 100 at once, before their replacements run: a dip that lasts
until the replacements are healthy. Tasks of the other services are stopped only once their
replacements are healthy, but those start only when the instance drains. With
``SCALER_WARNING_SURGE`` a warned instance holding tasks of a service that would dip
(:func:`dips`) does not drain at once:

1. every service (but a daemon) with tasks there gets its desired count raised by those tasks,
   as far as ``maximumPercent`` of its count before the surge allows
   (:func:`warning_surge_for`): the services that dip, and the others too, whose replacements
   would otherwise start only at the drain. Warnings that arrive together add up: a service
   already surged for other warned instances is raised by one more *step* for the new ones.
   Each step is written on the service first (the roll's ``scaler:roll-surge`` mark,
   :class:`~scaler.plan.roll.SurgeMark`), so a restarted or new leader can set it back;
2. the instance drains once each service there that dips is surged, steady and its tasks are
   healthy, or at its *deadline*: the interruption (two minutes after the warning) less
   ``SCALER_WARNING_SURGE_STOP_TIME``, the longest its tasks take to stop gracefully (their
   ``stopTimeout`` or load balancer deregistration delay);
3. each count is set back to the count before the surge once the instances it was for all
   drained (or are gone), unless someone else changed the count meanwhile: then it is left as
   they set it.

An instance without tasks of a service that dips, or none of whose services could be raised,
drains at once, as without the setting.

The old tasks keep serving until the drain, the new ones start at the warning. They can only be
placed where there is room: without room they stay PENDING and the instance drains at its
deadline. And ECS may place them on another warned instance, still ACTIVE while it waits: such
a task is lost with it, and a service that does not dip keeps its old task there until a
replacement is healthy, which may be too late for a graceful stop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from scaler.ecs.cluster import ACTIVE
from scaler.plan.roll import Deployment, SurgeMark, step_mark

NOTICE = 120.0  # seconds from a spot interruption warning to the interruption


def drain_deadline(warned_at: float, stop_time: float) -> float:
    """When a warned instance drains at the latest: just in time for a graceful stop."""
    return warned_at + NOTICE - stop_time


def dips(here: Mapping[str, int], services: Mapping[str, Deployment]) -> bool:
    """Whether draining an instance holding ``here`` (service -> its tasks there) makes a
    service dip: one with ``minimumHealthyPercent`` under 100 (not a daemon)."""
    return any(
        count > 0
        and (svc := services.get(name)) is not None
        and not svc.daemon
        and svc.min_healthy_percent < 100
        for name, count in here.items()
    )


def warning_surge_for(tasks: int, svc: Deployment) -> int:
    """Tasks to add to ``svc`` for ``tasks`` of its tasks on newly warned instances: all of them,
    as far as ``maximumPercent`` of its count before any surge allows; none for a daemon."""
    if svc.daemon or tasks <= 0:
        return 0
    base = svc.mark.desired if svc.mark is not None else svc.desired
    room = base * svc.max_percent // 100 - max(svc.desired, svc.running + svc.pending)
    return max(0, min(tasks, room))


@dataclass(frozen=True)
class WarningPlan:
    raises: Mapping[str, SurgeMark] = field(default_factory=dict)  # service -> mark, then raise
    drain: tuple[str, ...] = ()  # warned instances to drain now
    # service -> the count to set back to (None: changed by someone else, left), mark removed
    set_back: Mapping[str, int | None] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


def plan_warning_surges(
    warned: Mapping[str, float],
    tasks_on: Mapping[str, Mapping[str, int]],
    services: Mapping[str, Deployment],
    healthy: Collection[str],
    status: Mapping[str, str],
    now: float,
) -> WarningPlan:
    """One step, as plain values. ``warned``: ACTIVE instances under a warning -> their drain
    deadline; ``tasks_on``: instance -> service -> its tasks there (warned instances, and those
    ``services``: those with tasks on warned instances and those
    marked; ``healthy``: services whose tasks all report healthy; ``status``: ACTIVE or
    DRAINING of the instances named (absent: gone)."""
    raises = _raises(warned, tasks_on, services, now)
    marks = {n: raises.get(n, s.mark) for n, s in services.items()}
    drain, reasons = _drains(warned, tasks_on, services, marks, set(raises), healthy, now)
    for name, mark in sorted(raises.items()):
        reasons.append(f"warning surge: raise {name} to {mark.raised} (from {mark.desired})")
    back = _set_back(services, status, set(raises))
    reasons += [
        f"warning surge: set {name} back to {to}" if to is not None else f"{name} left as set"
        for name, to in sorted(back.items())
    ]
    return WarningPlan(raises, tuple(drain), back, tuple(reasons))


def _raises(
    warned: Mapping[str, float],
    tasks_on: Mapping[str, Mapping[str, int]],
    services: Mapping[str, Deployment],
    now: float,
) -> dict[str, SurgeMark]:
    """One step for each service with tasks on warned instances its mark does not name yet."""
    new: dict[str, dict[str, int]] = defaultdict(dict)
    for node in sorted(warned):
        if not dips(tasks_on.get(node, {}), services):
            continue  # drains at once: ECS replaces its tasks first
        for name, count in tasks_on.get(node, {}).items():
            svc = services.get(name)
            if svc is None or svc.busy or count <= 0:
                continue
            if svc.mark is None or node not in svc.mark.instances:
                new[name][node] = count
    raises: dict[str, SurgeMark] = {}
    for name, here in sorted(new.items()):
        svc = services[name]
        added = warning_surge_for(sum(here.values()), svc)
        if added > 0:
            raises[name] = step_mark(svc.mark, svc.desired, sorted(here), added, now)
    return raises


def _drains(
    warned: Mapping[str, float],
    tasks_on: Mapping[str, Mapping[str, int]],
    services: Mapping[str, Deployment],
    marks: Mapping[str, SurgeMark | None],
    raised: Collection[str],
    healthy: Collection[str],
    now: float,
) -> tuple[list[str], list[str]]:
    """Warned instances that drain now: at their deadline, when no service was surged for them,
    or when each service there that dips was, and is steady and healthy (and was not raised just
    now). A service that does not dip keeps its old tasks there until new ones are healthy."""
    drain: list[str] = []
    reasons: list[str] = []
    for node, deadline in sorted(warned.items()):
        here = tasks_on.get(node, {})
        surged = {n for n in here if (m := marks.get(n)) is not None and node in m.instances}
        dipping = [n for n, count in here.items() if dips({n: count}, services)]
        if not surged:
            why = "no service surged for it"
        elif now >= deadline:
            why = "its deadline"
        elif all(
            n in surged and n not in raised and services[n].steady and n in healthy for n in dipping
        ):
            why = "its services' replacements are healthy"
        else:
            continue
        drain.append(node)
        reasons.append(f"warning surge: drain {node} ({why})")
    return drain, reasons


def _set_back(
    services: Mapping[str, Deployment],
    status: Mapping[str, str],
    raised: Collection[str],
) -> dict[str, int | None]:
    """Marked services whose instances all drained (or are gone): back to the count before,
    unless it is no longer a count the surge set. Not while one of them is still ACTIVE (still
    to drain, a warning's or a roll's) or a task move's surge is on top.

    Set back as soon as they drained, not once they hold none of the service's tasks: with the
    raised count ECS would keep a service's tasks there (``minimumHealthyPercent`` of the raised
    count) and start more, and the instance dies with them; with the count before, the extra
    tasks that run already are the replacements, and ECS stops the old ones in time for a
    graceful stop."""
    back: dict[str, int | None] = {}
    for name, svc in sorted(services.items()):
        mark = svc.mark
        if mark is None or svc.busy or name in raised:
            continue
        if any(status.get(node) == ACTIVE for node in mark.instances):
            continue
        back[name] = mark.desired if mark.surged(svc.desired) else None
    return back
