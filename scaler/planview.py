"""``scaler plan``: what drain, top-up and rebalance would do now, and why. Read-only.

It reads the live cluster with List/Describe calls only, runs the same planners ``scaler run``
runs, and prints their decisions without acting on any of them: the way to see what the scaler
would do before letting it (or before turning off ``SCALER_DRY_RUN``).
"""

from __future__ import annotations

import time
from typing import Any

from scaler.aws.capacity_reader import CapacityReader
from scaler.aws.clients import AwsClients
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.live import live_cluster, with_measured_cpu
from scaler.aws.rebalancer import policy_from as rebalance_policy
from scaler.capacity.policy import policy_from as capacity_policy
from scaler.clock import SystemClock
from scaler.guard import drain_risks, scan_services
from scaler.notices import NoticeBoard
from scaler.plan.capacity import CapacityMemory, deficit, plan_capacity
from scaler.plan.rebalance import load, plan_moves
from scaler.settings import LoadSource, Settings


async def plan_now(aws: AwsClients, settings: Settings) -> dict[str, Any]:
    directory = InstanceDirectory(aws.ecs, settings.cluster, SystemClock(), 0.0)
    return {
        "cluster": settings.cluster_name,
        "drain": await _drain(aws, settings, directory),
        "top_up": await _top_up(aws, settings, directory),
        "rebalance": await _rebalance(aws, settings),
    }


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


async def _top_up(
    aws: AwsClients, settings: Settings, directory: InstanceDirectory
) -> dict[str, Any]:
    if not (settings.spot_pools or settings.on_demand_pools or settings.overflow_services):
        return {"off": "no SCALER_SPOT_POOLS, SCALER_ON_DEMAND_POOLS or SCALER_OVERFLOW_SERVICES"}
    observed = await CapacityReader(aws, settings, directory, NoticeBoard()).read(time.time())
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


async def _rebalance(aws: AwsClients, settings: Settings) -> dict[str, Any]:
    live = await live_cluster(aws, settings.cluster)
    if settings.load_source is LoadSource.MEASURED:
        live = await with_measured_cpu(aws, live)
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
    return "\n".join(lines) + "\n"
