"""``scaler plan``: what drain, top-up, rebalance, the roll, consolidation and the Spot Fleet
migration would do now, and why; and the reservation advice (:mod:`scaler.plan.advice`).
Read-only.

It reads the live cluster with List/Describe calls only, runs the same planners ``scaler run``
runs, and prints their decisions without acting on any of them: the way to see what the scaler
would do before letting it (or before turning off ``SCALER_DRY_RUN``). The roll, consolidation
and the migration are planned as a first cycle of ``scaler run`` would plan them (nothing in
flight, no trouble remembered); each one that is off says which setting turns it on.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from scaler.aws.advice import advice_now
from scaler.aws.capacity_reader import CapacityReader
from scaler.aws.clients import AwsClients, error_code
from scaler.aws.consolidation import Consolidator
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.migration import Migration
from scaler.aws.rebalancer import policy_from as rebalance_policy
from scaler.capacity.observed import Observed
from scaler.capacity.policy import policy_from as capacity_policy
from scaler.capacity.roll import RollMemory
from scaler.clock import SystemClock
from scaler.guard import drain_risks, scan_services
from scaler.notices import NoticeBoard
from scaler.plan.advice import UNITS
from scaler.plan.capacity import CapacityMemory, deficit, plan_capacity
from scaler.plan.rebalance import load, plan_moves
from scaler.plan.roll import RollPlan, RollPolicy
from scaler.settings import LoadSource, Settings


async def plan_now(aws: AwsClients, settings: Settings) -> dict[str, Any]:
    directory = InstanceDirectory(aws.ecs, settings.cluster, SystemClock(), 0.0)
    observed = await _observed(aws, settings, directory)
    live = await live_cluster(aws, settings.cluster)
    if settings.load_source is LoadSource.MEASURED:
        live = await with_measured_cpu(aws, live)
    return {
        "cluster": settings.cluster_name,
        "drain": await _drain(aws, settings, directory),
        "top_up": _top_up(settings, observed),
        "rebalance": _rebalance(settings, live),
        "advice": await _advice(aws, settings, live),
        "roll": _roll(settings, observed),
        "consolidation": await _consolidation(aws, settings, observed),
        "migration": await _migration(aws, settings, observed),
    }


NO_POOLS = (
    "no SCALER_SPOT_POOLS, SCALER_ON_DEMAND_POOLS, SCALER_SPOT_TEMPLATES, "
    "SCALER_ON_DEMAND_TEMPLATES or SCALER_OVERFLOW_SERVICES"
)


def _pools(settings: Settings) -> bool:
    s = settings
    pools = s.spot_pools or s.on_demand_pools or s.spot_templates or s.on_demand_templates
    return bool(pools or s.overflow_services)


async def _observed(
    aws: AwsClients, settings: Settings, directory: InstanceDirectory
) -> Observed | None:
    """The capacity side's reading of the cluster, as its cycle reads it (None: no pools)."""
    if not _pools(settings):
        return None
    return await CapacityReader(aws, settings, directory, NoticeBoard()).read(time.time())


async def _drain(
    aws: AwsClients, settings: Settings, directory: InstanceDirectory
) -> dict[str, Any]:
    risks = drain_risks(await scan_services(aws.ecs, settings.cluster))
    instances = await directory.refresh()
    return {
        "draining": sorted(ci.ec2_instance_id for ci in instances if ci.draining),
        "services_at_risk": [
            {"service": r.service, "cause": r.cause, "detail": r.detail} for r in risks
        ],
        "note": "drains follow events (spot warnings, lifecycle actions...); none is pending here",
    }


def _top_up(settings: Settings, observed: Observed | None) -> dict[str, Any]:
    if observed is None:
        return {"off": NO_POOLS}
    policy = capacity_policy(settings)
    plan = plan_capacity(observed.snapshot, CapacityMemory(), policy)
    pools = {p.name: p for p in observed.snapshot.pools}
    cpu, memory = deficit(observed.snapshot, policy)
    return {
        "deficit": {"cpu": cpu, "memory": memory},
        "pools": {
            name: {"size": p.size, "target": plan.pool_targets.get(name, p.size)}
            for name, p in pools.items()
        },
        "overflow": dict(plan.overflow_targets),
        "release": list(plan.release),
        "reasons": list(plan.reasons) or ["nothing to do"],
    }


def _roll(settings: Settings, observed: Observed | None) -> dict[str, Any]:
    if observed is None or not settings.roll:
        return {"off": "SCALER_ROLL is off" if observed is not None else NO_POOLS}
    policy = RollPolicy(settings.disruption_budget, settings.roll_per_hour)
    plan = RollMemory().plan(observed.snapshot, observed.drift, CapacityMemory(), policy)
    return _roll_view(plan, sorted(observed.drift.outdated), "nothing to roll")


def _roll_view(plan: RollPlan, outdated: list[str], idle: str) -> dict[str, Any]:
    return {
        "out_of_date": outdated,
        "launch": dict(plan.launch),
        "drain": list(plan.drain),
        "reasons": list(plan.reasons) or [idle],
    }


async def _consolidation(
    aws: AwsClients, settings: Settings, observed: Observed | None
) -> dict[str, Any]:
    if observed is None or not settings.consolidate:
        return {"off": "SCALER_CONSOLIDATE is off" if observed is not None else NO_POOLS}
    policy = capacity_policy(settings)
    consolidator = Consolidator(aws, settings, policy, settings.consolidate_interval)
    chosen = await consolidator.plan(
        observed.snapshot, observed.facts or {}, CapacityMemory(), frozenset()
    )
    return {
        "drain": [
            {"instance": r.instance, "pool": r.pool, "saving_per_hour": round(r.saving, 4)}
            for r in chosen.remove
        ],
        "reasons": list(chosen.reasons) or ["nothing to give back"],
    }


async def _migration(
    aws: AwsClients, settings: Settings, observed: Observed | None
) -> dict[str, Any]:
    if observed is None or not settings.migrate_spot_fleets:
        return {"off": "SCALER_MIGRATE_SPOT_FLEETS is empty" if observed is not None else NO_POOLS}
    policy = RollPolicy(settings.disruption_budget, settings.migrate_per_hour)
    migration = Migration(aws, settings.migrate_spot_fleets, policy)
    fleets = await migration.reader.read(migration.fleets)
    if fleets is None:
        return {"off": "the Spot Fleets could not be read (see the log)"}
    plan = migration.plan(
        observed.snapshot, fleets, CapacityMemory(), capacity_policy(settings), frozenset()
    )
    return _roll_view(plan, sorted(fleets.remaining), "nothing to migrate")


def _rebalance(settings: Settings, live: LiveCluster) -> dict[str, Any]:
    plan = plan_moves(
        live.model.instances, live.model.services, time.time(), rebalance_policy(settings)
    )
    return {
        "enabled": settings.task_rebalance,
        "hot": {iid: round(load(live.model.instances[iid]), 3) for iid in plan.hot},
        "imbalance": plan.imbalance,
        "moves": [
            {
                "service": m.service,
                "task": live.task_arns.get(m.task, m.task),
                "from": m.source,
                "to": m.destination,
            }
            for m in plan.moves
        ],
        "reasons": list(plan.reasons) or ["nothing to move"],
        "notes": live.notes,
    }


async def _advice(aws: AwsClients, settings: Settings, live: LiveCluster) -> dict[str, Any]:
    try:
        plan = await advice_now(aws, settings, live, datetime.now(UTC))
    except Exception as exc:  # e.g. no cloudwatch:GetMetricData: the rest of the plan stands
        if error_code(exc) is None:
            raise
        return {"enabled": settings.advice, "off": f"CloudWatch not read ({error_code(exc)})"}
    return {
        "enabled": settings.advice,
        "hot": plan.hot,
        "hot_spots_removed": plan.hot_spots_removed,
        "advice": [
            {
                "service": a.service,
                "resource": a.resource,
                "reserved": a.reserved,
                "advised": a.advised,
                "hot_spots_removed": a.hot_spots_removed,
                "evidence": {k: round(v, 1) for k, v in asdict(a.evidence).items()},
            }
            for a in plan.advice
        ],
        "waiting": list(plan.waiting),
    }


def _advice_lines(view: dict[str, Any]) -> list[str]:
    if "off" in view:
        return [f"  off: {view['off']}"]
    lines = []
    for a in view["advice"]:
        seen, units = a["evidence"], UNITS[a["resource"]]
        lines.append(
            f"  {a['service']} {a['resource']}: reserve {a['advised']} {units}, not "
            f"{a['reserved']} (p90 use {seen['p90']:.0f}, max {seen['max']:.0f}, "
            f"{seen['samples']:.0f} samples over {seen['window'] / 3600:.1f} h); "
            f"relieves {a['hot_spots_removed']} of {view['hot']} hot instance(s)"
        )
    lines += [f"  waiting: {line}" for line in view["waiting"]]
    if not view["advice"]:
        return [*lines, "  nothing to advise"]
    return [
        *lines,
        f"  all of it: relieves {view['hot_spots_removed']} of {view['hot']} hot instance(s)",
        "  to act on it: set the task definition's cpu/memory to the advised values, deploy",
    ]


def render(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"cluster {report['cluster']}", "", "drain"]
    drain = report["drain"]
    lines.append(f"  DRAINING now: {', '.join(drain['draining']) or 'none'}")
    for risk in drain["services_at_risk"]:
        lines.append(f"  at risk: {risk['service']} ({risk['cause']}): {risk['detail']}")
    lines += ["", "top-up"]
    top = report["top_up"]
    if "off" in top:
        lines.append(f"  off: {top['off']}")
    else:
        lines.append(
            f"  deficit: {top['deficit']['cpu']} CPU units, {top['deficit']['memory']} MiB"
        )
        lines += [f"  {reason}" for reason in top["reasons"]]
    lines += [
        "",
        "rebalance" + ("" if report["rebalance"]["enabled"] else " (SCALER_TASK_REBALANCE is off)"),
    ]
    reb = report["rebalance"]
    for iid, share in reb["hot"].items():
        lines.append(f"  hot: {iid} at {share:.0%} CPU reserved")
    lines += [f"  {reason}" for reason in reb["reasons"]]
    advice = report["advice"]
    off = "" if advice["enabled"] else " (SCALER_ADVICE is off: no metrics)"
    lines += ["", "reservation advice" + off, *_advice_lines(advice)]
    for part in ("roll", "consolidation", "migration"):
        lines += ["", part, *_section(report[part])]
    return "\n".join(lines) + "\n"


def _section(view: dict[str, Any]) -> list[str]:
    """A roll-like part of the report: off and why, or what it would do and why."""
    if "off" in view:
        return [f"  off: {view['off']}"]
    lines = []
    if view.get("out_of_date"):
        lines.append(f"  to replace: {len(view['out_of_date'])} instance(s)")
    return lines + [f"  {reason}" for reason in view["reasons"]]
