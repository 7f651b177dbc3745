"""Giving back instances by the scaler's own choice: retire the drained, trim, consolidate.

Instances the scaler drains by its own choice are first tagged retiring (the reason in
:mod:`scaler.aws.retiring`), and only those are ever terminated by it, once they hold no task of
any status (:func:`retire_drained`); one drained by hand never is. Three of this cycle's steps
choose such instances:

- :func:`trim_surplus`: for each surplus an Auto Scaling group launched by itself
  (:mod:`scaler.aws.replaced`), one of its empty instances whose loss the plan would not launch
  back;
- :func:`scale_in_idle`: instances of its pools that ran no task for ``SCALER_SCALE_IN_AFTER``
  seconds (:func:`scaler.plan.scale_in.idle_for`), whose loss the plan would not launch back
  (the headroom stays), as a capacity provider's managed scaling gives back empty instances,
  but not within ``SCALER_POOL_COOLDOWN`` of spot trouble;
- :func:`consolidate`: the instances whose tasks fit elsewhere
  (:func:`scaler.plan.consolidate.plan_consolidation`), only once the cluster is settled
  (:func:`unsettled`).

Either removes only what a group can spare (MinSize) and what keeps its AZs balanced
(:mod:`scaler.capacity.observed`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping

from scaler.aws.retiring import IDLE, REASONS, SURPLUS, Ec2Facts, retiring
from scaler.capacity import LOGGER
from scaler.capacity.observed import Observed, balanced, draining, note_retiring, spare
from scaler.capacity.ports import Actuator, Consolidation
from scaler.metrics import Metrics
from scaler.plan.capacity import CapacityMemory, CapacityPlan, CapacityPolicy, CapacitySnapshot
from scaler.plan.scale_in import calm, idle_for, launches_after

log = logging.getLogger(LOGGER)


async def retire_drained(
    observed: Observed, facts: dict[str, Ec2Facts], actuator: Actuator, metrics: Metrics
) -> None:
    """Terminate the instances drained by the scaler's own choice (tagged retiring) once
    they hold no task of any status; count those still on their way out."""
    snap = observed.snapshot
    managed = {p.name for p in snap.pools if p.managed}
    leaving: Counter[str] = Counter()
    for n in snap.nodes:
        reason = facts[n.id].retiring if n.id in facts else None
        if reason is None or n.status != "DRAINING" or facts[n.id].gone:
            continue
        # a Spot Fleet's instance (not in a group) is the migration's to retire
        ours = n.pool in managed and not n.tasks
        if not (
            ours
            and await actuator.empty(observed.instances.get(n.id))
            and await actuator.retire(n.id, n.pool, reason, observed)
        ):
            leaving[reason] += 1
    for reason in REASONS:
        metrics.retiring.labels(reason).set(leaving[reason])


async def trim_surplus(
    observed: Observed,
    plan: CapacityPlan,
    actuator: Actuator,
    memory: CapacityMemory,
    policy: CapacityPolicy,
) -> None:
    """Drain, for each surplus a group launched by itself (:mod:`scaler.aws.replaced`), one
    of its instances that runs no task, is not leaving and that the plan would not launch
    back; the cycle then terminates it with the desired capacity decremented."""
    pools = {p.name: p for p in observed.snapshot.pools}
    if plan.launches(pools) or plan.release:
        return
    replacements = actuator.replacements
    for name in sorted(observed.min_size):
        for _ in range(replacements.excess(name)):
            node = _spare_empty(observed, name, memory, policy)
            ci = observed.instances.get(node) if node else None
            if node is None or ci is None:
                break
            if not await actuator.mark_retiring(node, SURPLUS):
                break
            if not await actuator.drain(ci, SURPLUS):
                break
            replacements.removed(name)
            note_retiring(observed, node, SURPLUS)  # spare() counts it from now on
            observed.snapshot = draining(observed.snapshot, node)


async def scale_in_idle(
    observed: Observed,
    plan: CapacityPlan,
    actuator: Actuator,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    idle: Mapping[str, float],
    after: float,
) -> None:
    """Drain the instances idle ``after`` seconds or more (``idle``: since when each is, from
    :func:`scaler.plan.scale_in.idle_since`) that their group can spare, that keep its AZs
    balanced, that run no task of any kind (a standalone task too) and whose loss the plan
    would not launch back; the cycle terminates them once empty. None while spot trouble
    (a notice, a launch that found no capacity) is more recent than the pool cooldown: a storm
    under way needs the room."""
    snap = observed.snapshot
    pools = {p.name: p for p in snap.pools}
    if plan.launches(pools) or plan.release:
        return
    if not calm(memory, snap.now, policy.pool_cooldown):
        return
    for node in spare(observed, idle_for(idle, observed.snapshot.now, after)):
        ci = observed.instances.get(node)
        if ci is None or ci.running_tasks + ci.pending_tasks > 0:
            continue
        if not balanced(observed, [node]):
            continue
        if launches_after(observed.snapshot, memory, policy, frozenset({node})):
            continue
        if not await actuator.mark_retiring(node, IDLE):
            break
        if not await actuator.drain(ci, IDLE):
            break
        log.info(
            "idle instance given back",
            extra={"instance_id": node, "idle_for": observed.snapshot.now - idle[node]},
        )
        note_retiring(observed, node, IDLE)
        observed.snapshot = draining(observed.snapshot, node)


def _spare_empty(
    observed: Observed, group: str, memory: CapacityMemory, policy: CapacityPolicy
) -> str | None:
    """An ACTIVE instance of ``group`` running no task, whose group can spare it and whose
    loss the capacity plan would not launch back; None if there is none."""
    snap = observed.snapshot
    empty = sorted(
        n.id
        for n in snap.nodes
        if n.pool == group and n.status == "ACTIVE" and not n.doomed and n.tasks == 0
    )
    for node in spare(observed, empty):
        if not balanced(observed, [node]):
            continue
        if not launches_after(snap, memory, policy, frozenset({node})):
            return node
    return None


async def consolidate(
    observed: Observed,
    facts: dict[str, Ec2Facts],
    plan: CapacityPlan,
    consolidator: Consolidation,
    actuator: Actuator,
    memory: CapacityMemory,
) -> None:
    """Drain the instances consolidation can give back (:mod:`scaler.aws.consolidation`)."""
    snap = observed.snapshot
    ours = frozenset(
        n.id
        for n in snap.nodes
        if n.status == "DRAINING" and n.id in retiring(facts, "consolidation")
    )
    stale = observed.drift.outdated | observed.migrating
    if not consolidator.due(snap.now) or unsettled(snap, plan, ours, stale):
        return
    try:
        chosen = await consolidator.plan(snap, facts, memory, ours, observed.fingerprint)
    except Exception:
        log.exception("consolidation plan failed: nothing drained this time")
        return
    for reason in chosen.reasons:
        log.info("consolidation decision", extra={"reason": reason})
    allowed = balanced(observed, spare(observed, [r.instance for r in chosen.remove]))
    for removal in chosen.remove:
        if removal.instance not in allowed:
            continue
        ci = observed.instances.get(removal.instance)
        if ci is None or not await actuator.mark_retiring(removal.instance, "consolidation"):
            continue
        if await actuator.drain(ci, "consolidation"):
            consolidator.drained_at.append(snap.now)


def unsettled(
    snap: CapacitySnapshot,
    plan: CapacityPlan,
    ours: frozenset[str],
    outdated: Collection[str] = (),
) -> str | None:
    """Why consolidation must wait, or None. ``ours``: instances it is draining itself;
    ``outdated``: instances the roll has yet to replace."""
    pools = {p.name: p for p in snap.pools}
    if outdated:
        return "a roll is under way"
    if plan.launches(pools) or plan.release:
        return "the capacity plan adds or gives back capacity"
    if any(n.status == "launching" for n in snap.nodes):
        return "instances are launching"
    if any(n.doomed and n.id not in ours for n in snap.nodes):
        return "instances are draining or under a spot notice"
    if any(s.unplaced for s in snap.services):
        return "tasks are waiting for a place"
    return None
