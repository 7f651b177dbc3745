"""``scaler demo``: the real scaler against an embedded local AWS, start to finish, no account.

An embedded moto server plays AWS. The simulator's ECS model, mirrored into it
(:class:`~scaler.sim.moto_world.MotoWorld`), makes its ECS behave like ECS: a small spot cluster
runs three services; a storm sends spot interruption warnings through EventBridge into the
scaler's queue; the scaler (the same :class:`~scaler.loop.Scaler` that ``scaler run`` runs, over
real HTTP, serving ``/metrics``) drains the instances; the model's scheduler moves their tasks;
the notices expire and the instances die. The queue also carries an event for another cluster's
instance, a duplicate and a malformed message. The demo prints the timeline and a summary, and
exits by itself in under a minute.

The burst helpers here (:func:`make_burst`, :func:`run_until`) also serve the tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsTarget
from scaler.ecs.cluster import InstanceType, ServiceSpec, Strategy
from scaler.loop import Scaler
from scaler.metrics import Metrics
from scaler.settings import Settings, load_settings
from scaler.sim.engine import Sim
from scaler.sim.moto_world import Bridge, MotoWorld
from scaler.sim.scenario import Event, Pool, Scenario

CLUSTER = "demo"
MALFORMED = ['{"truncated": ', "not json at all", "[1, 2, 3]", json.dumps({"id": "x"})]


@dataclass
class Burst:
    """A scripted mix of events and what the scaler should make of each."""

    published: list[dict[str, Any]] = field(default_factory=list)  # through EventBridge
    raw: list[str] = field(default_factory=list)  # straight onto the queue
    expected: dict[str, int] = field(default_factory=dict)  # outcome -> count
    malformed: int = 0  # how many raw bodies are malformed

    def expect(self, outcome: str, count: int = 1) -> None:
        self.expected[outcome] = self.expected.get(outcome, 0) + count


def make_burst(
    members: list[str],
    strangers: list[str],
    *,
    duplicates: int,
    malformed: int,
    max_receive: int = 1,
    seed: int = 7,
) -> Burst:
    """Warnings for each member, plus events for strangers, duplicates and malformed bodies."""
    rng = random.Random(seed)
    burst = Burst()
    for iid in members:
        burst.published.append(testbed.spot_warning(iid))
        burst.expect("handled")
    for iid in strangers:
        burst.published.append(testbed.spot_warning(iid))
        burst.expect("other_cluster")
    for iid in rng.sample(members, min(duplicates, len(members))):
        copy = json.dumps(testbed.rebalance_recommendation(iid))
        burst.raw += [copy, copy]
        burst.expect("handled")
        burst.expect("duplicate")
    for i in range(malformed):
        burst.raw.append(MALFORMED[i % len(MALFORMED)])
        burst.malformed += 1
        burst.expect("malformed", max_receive)  # counted at each receive until redriven
    burst.published.append(
        testbed._envelope("aws.ec2", "EC2 Instance Scheduled Tag Change", {}, [], None, None)
    )
    burst.expect("ignored")
    return burst


def event_outcomes(metrics: Metrics) -> dict[str, int]:
    """Outcome -> count, summed over kinds, from the live metrics."""
    totals: dict[str, int] = {}
    for sample in next(iter(metrics.events.collect())).samples:
        if sample.name.endswith("_total"):
            outcome = sample.labels["outcome"]
            totals[outcome] = totals.get(outcome, 0) + int(sample.value)
    return totals


def aws_calls(metrics: Metrics) -> dict[str, int]:
    """``service:Operation`` -> calls, from the live metrics."""
    calls: dict[str, int] = {}
    for sample in next(iter(metrics.aws_calls.collect())).samples:
        if sample.name.endswith("_total"):
            key = f"{sample.labels['service']}:{sample.labels['operation']}"
            calls[key] = calls.get(key, 0) + int(sample.value)
    return calls


def _reached(expected: dict[str, int], metrics: Metrics) -> bool:
    seen = event_outcomes(metrics)
    # malformed messages are counted once per receive; they need at least one receive each
    return all(seen.get(k, 0) >= v for k, v in expected.items())


async def run_until(
    scaler: Scaler, done: Callable[[], bool], limit: float, poll: float = 0.1
) -> bool:
    """Run ``scaler`` until ``done()`` holds or ``limit`` seconds pass; True if ``done()`` held."""
    stop = asyncio.Event()
    runner = asyncio.create_task(scaler.run(stop))
    deadline = time.monotonic() + limit
    ok = False
    while not runner.done() and time.monotonic() < deadline:
        if scaler.started.is_set() and done():
            ok = True
            break
        await asyncio.sleep(poll)
    stop.set()
    await runner
    return ok


def _settings(queue_url: str) -> Settings:
    port = int(os.environ.get("SCALER_METRICS_PORT", "0"))
    return load_settings(
        cluster=CLUSTER,
        queue_url=queue_url,
        metrics_port=port,
        metrics_host="127.0.0.1",
        wait_time=1,
        shutdown_grace=5,
        drain_poll=1,
    )


# -- the cluster the demo runs, on a clock 6x faster than AWS's (notice 20 s, boot 5-8 s) -----

DEMO_TYPE = InstanceType("c5.xlarge", 4, 7482, 0.17)  # moto registers 4096 CPU / 7482 MiB
NOTICE = 20.0
STORM_AT = 6.0
LENGTH = 45.0


def demo_scenario() -> Scenario:
    azs = ("us-east-1a", "us-east-1b")
    pools = tuple(Pool(f"spot-{az}", "spot", DEMO_TYPE.name, az, 0.06, 0.0, 3) for az in azs)
    pools += tuple(Pool(f"od-{az}", "on-demand", DEMO_TYPE.name, az) for az in azs)
    az_spread = Strategy("spread", "attribute:ecs.availability-zone")
    services = (
        ServiceSpec(
            "web",
            6,
            512,
            512,
            50,
            200,
            (az_spread, Strategy("spread", "instanceId")),
            start_delay=2,
            health_delay=3,
        ),
        ServiceSpec(
            "api",
            4,
            1024,
            1024,
            50,
            200,
            (az_spread, Strategy("binpack", "memory")),
            start_delay=2,
            health_delay=3,
        ),
        ServiceSpec(
            "worker",
            4,
            512,
            1024,
            50,
            200,
            (Strategy("binpack", "cpu"),),
            start_delay=2,
            health_delay=3,
        ),
    )
    storm = Event(STORM_AT, "storm", {"share": 0.34, "over": 2.0, "unavailable_for": 60.0})
    return Scenario(
        "demo",
        LENGTH / 3600,
        {DEMO_TYPE.name: DEMO_TYPE},
        pools,
        services,
        (storm,),
        boot_delay=(5.0, 8.0),
    )


def _noise(aws: testbed.LocalAws, queues: testbed.Queues, stranger: str) -> Burst:
    """What a real queue also carries: another cluster's instance, a duplicate, garbage."""
    burst = Burst()
    copy = json.dumps(testbed.spot_warning(stranger))
    burst.raw += [copy, copy, MALFORMED[0]]
    burst.malformed = 1
    testbed.send_raw(aws, queues.url, burst.raw)
    return burst


async def _drive(scaler: Scaler, sim: Sim, world: MotoWorld, limit: float) -> None:
    """Step the model in real time beside the running scaler, until the scenario's end."""
    stop = asyncio.Event()
    runner = asyncio.create_task(scaler.run(stop))
    await scaler.started.wait()
    if scaler.http is not None:
        world.say(f"the scaler is running; metrics at http://127.0.0.1:{scaler.http.port}/metrics")
    began = time.monotonic()
    while not runner.done():
        elapsed = time.monotonic() - began
        if elapsed >= min(limit, LENGTH):
            break
        await asyncio.to_thread(world.sync_draining, sim)
        await asyncio.to_thread(sim.step_until, elapsed)
        await asyncio.sleep(0.25)
    stop.set()
    await runner


def run_demo(out: Callable[[str], None] = print, timeout: float = 60.0) -> int:
    """The scaler against a local AWS whose ECS behaves like ECS; 0 if no task was lost."""
    with testbed.local_aws() as aws:
        out(
            f"local AWS endpoint {aws.endpoint}; the demo's clock runs 6x faster than AWS's "
            f"(spot notice {NOTICE:.0f} s)"
        )
        aws.client("ecs").create_cluster(clusterName=CLUSTER)
        queues = testbed.create_queues(aws, "scaler-demo", max_receive=2, visibility=5)
        testbed.route_events(aws, queues)
        world = MotoWorld(aws, CLUSTER, out)
        sim = Sim(
            demo_scenario(), Bridge(world), seed=7, world=world, notice=NOTICE, signal_delay=0.5
        )
        sim.begin()
        stranger = testbed.launch_instances(aws, 1, az="us-east-1c")[0]
        noise = _noise(aws, queues, stranger)
        out(
            f"cluster {CLUSTER!r}: {len(sim.cluster.instances)} spot instances, "
            f"{sum(len(s.tasks) for s in sim.cluster.services.values())} service tasks; "
            f"a storm will reclaim a third of them"
        )
        scaler = Scaler(
            _settings(queues.url), AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint)
        )
        world.started = time.monotonic()
        asyncio.run(_drive(scaler, sim, world, timeout))
        figures = sim.finish()
        _report(out, scaler, sim, figures, noise, aws, queues)
        return 0 if figures["interrupted_tasks"] == 0 else 1


def _report(
    out: Callable[[str], None],
    scaler: Scaler,
    sim: Sim,
    figures: dict[str, Any],
    noise: Burst,
    aws: testbed.LocalAws,
    queues: testbed.Queues,
) -> None:
    out("\nsummary")
    out(
        f"  tasks lost with their instance: {figures['interrupted_tasks']}; "
        f"availability {figures['availability']:.4f} "
        f"(worst 5 min {figures['worst_5m_availability']:.4f})"
    )
    running = {
        s.spec.name: sum(t.healthy(sim.now) for t in s.tasks.values())
        for s in sim.cluster.services.values()
    }
    desired = {s.spec.name: s.spec.desired for s in sim.cluster.services.values()}
    out(
        "  services healthy/desired: "
        + ", ".join(f"{k} {running[k]}/{desired[k]}" for k in running)
    )
    seen = event_outcomes(scaler.metrics)
    out("  events: " + ", ".join(f"{k}={v}" for k, v in sorted(seen.items()) if v))
    out(
        f"  dead-letter queue: {testbed.queue_depth(aws, queues.dlq_url)} message(s) "
        f"({noise.malformed} malformed sent)"
    )
    calls = aws_calls(scaler.metrics)
    out("  scaler's AWS calls: " + ", ".join(f"{k}={v}" for k, v in sorted(calls.items())))
