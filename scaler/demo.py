"""``scaler demo``: the real scaler against an embedded local AWS, start to finish, no account.

An embedded moto server plays AWS. The simulator's ECS model, mirrored into it
(:class:`~scaler.sim.moto_world.MotoWorld`), makes its ECS behave like ECS: a small spot cluster
(an Auto Scaling group, with an empty on-demand group as the fallback) runs three services; a
storm sends spot interruption warnings through EventBridge into the scaler's queue; the scaler
(the same :class:`~scaler.loop.Scaler` that ``scaler run`` runs, over real HTTP, serving
``/metrics``, with both groups as its pools) drains the instances and tops up the lost capacity
with on-demand; the model's scheduler moves their tasks; the notices expire and the instances die;
once spot has been quiet the scaler launches spot again and gives the on-demand instance back.

The queue also carries test messages put straight on it: an event for another cluster's instance,
twice, and a malformed body. The timeline names each with what the scaler did with it, and shows
the scaler's capacity decisions as it logs them (:mod:`scaler.demo_story`); the summary explains
any availability below 1 per service. The run ends once everything has settled, in under a
minute.

The burst helpers here (:func:`make_burst`, :func:`run_until`) also serve the tests.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsTarget
from scaler.demo_story import CAPACITY, INTAKE, Injected, LossLedger, witnessing
from scaler.ecs.cluster import ACTIVE, InstanceType, ServiceSpec, ServiceState, Strategy, Task
from scaler.loop import Scaler
from scaler.metrics import Metrics
from scaler.settings import Settings, load_settings
from scaler.sim.engine import Sim
from scaler.sim.moto_world import Bridge, MotoWorld
from scaler.sim.scenario import Event, Pool, Scenario

CLUSTER = "demo"
MAX_RECEIVE = 2  # the demo queue's redrive policy: to the dead-letter queue after 2 receives
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


STARTUP_GRACE = 30.0  # seconds run_until gives a scaler to start before counting


async def run_until(
    scaler: Scaler, done: Callable[[], bool], limit: float, poll: float = 0.1
) -> bool:
    """Run ``scaler`` until ``done()`` holds or ``limit`` seconds of its operation pass; True if
    ``done()`` held. The seconds count from the end of its start-up (which may take a while on a
    loaded machine, and is given ``STARTUP_GRACE`` seconds of its own), so "nothing happened
    within ``limit``" means within ``limit`` seconds of the scaler running."""
    stop = asyncio.Event()
    runner = asyncio.create_task(scaler.run(stop))
    deadline = time.monotonic() + limit + STARTUP_GRACE
    counting = False
    ok = False
    while not runner.done() and time.monotonic() < deadline:
        if scaler.started.is_set():
            if not counting:
                counting, deadline = True, time.monotonic() + limit
            if done():
                ok = True
                break
        await asyncio.sleep(poll)
    stop.set()
    await runner
    return ok


# -- the cluster the demo runs, on a clock 6x faster than AWS's (notice 20 s, boot 4-6 s) -----

DEMO_TYPE = InstanceType("c5.xlarge", 4, 7482, 0.17)  # moto registers 4096 CPU / 7482 MiB
AZS = ("us-east-1a", "us-east-1b")
SPOT_GROUP, ON_DEMAND_GROUP = "demo-spot", "demo-on-demand"
NOTICE = 20.0
STORM_AT = 2.0
QUIET = 12.0  # SCALER_POOL_COOLDOWN and SCALER_REVERT_AFTER, on the demo's clock
LENGTH = 48.0  # the run ends once everything has settled, at the latest here


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
        spot_pools=SPOT_GROUP,
        on_demand_pools=ON_DEMAND_GROUP,
        capacity_interval=1,
        pool_cooldown=QUIET,
        revert_after=QUIET,
        # the demo shows the drain at the warning: its moto world reports no task health, so
        # replacements first (the default) would hold each warned instance to its deadline
        warning_surge=False,
    )


def _service(
    name: str, desired: int, cpu: int, memory: int, strategies: tuple[Strategy, ...]
) -> ServiceSpec:
    """A service at minimumHealthyPercent 50 / maximumPercent 200 (the ECS defaults for
    rolling updates), quick to start (2 s) and to pass its health check (3 s more)."""
    return ServiceSpec(
        name, desired, cpu, memory, 50, 200, strategies, start_delay=2.0, health_delay=3.0
    )


def demo_scenario() -> Scenario:
    pools = tuple(Pool(f"spot-{az}", "spot", DEMO_TYPE.name, az, 0.06, 0.0, 3) for az in AZS)
    pools += tuple(Pool(f"od-{az}", "on-demand", DEMO_TYPE.name, az) for az in AZS)
    az_spread = Strategy("spread", "attribute:ecs.availability-zone")
    # 17 of the 24 vCPUs reserved: the 4 instances left after the storm cannot hold the tasks
    # and the 5% headroom (a top-up); 5 spot instances can, with twice the headroom (the
    # on-demand instance can go back)
    services = (
        _service("web", 8, 1024, 512, (az_spread, Strategy("spread", "instanceId"))),
        _service("api", 6, 1024, 1024, (az_spread, Strategy("binpack", "memory"))),
        _service("worker", 6, 512, 1024, (az_spread, Strategy("binpack", "cpu"))),
    )
    # one of the two spot pools (the market draws which), two of its three instances
    storm = Event(
        STORM_AT, "storm", {"share": 0.5, "take": 0.67, "over": 2.0, "unavailable_for": 1.0}
    )
    return Scenario(
        "demo",
        LENGTH / 3600,
        {DEMO_TYPE.name: DEMO_TYPE},
        pools,
        services,
        (storm,),
        boot_delay=(4.0, 6.0),
    )


def _inject(aws: testbed.LocalAws, queues: testbed.Queues, stranger: str) -> Injected:
    """What a real queue also carries: an event for another cluster's instance, sent twice (a
    duplicate), and a malformed body."""
    copy = json.dumps(testbed.spot_warning(stranger))
    ids = testbed.send_raw(aws, queues.url, [copy, copy, MALFORMED[0]])
    injected = Injected(max_receive=MAX_RECEIVE)
    what = f"a spot warning for {stranger}, an instance of another cluster"
    injected.add(ids[0], f"copy 1 of {what}")
    injected.add(ids[1], f"copy 2 of {what}")
    injected.add(ids[2], f"a malformed message {MALFORMED[0]!r}", malformed=True)
    return injected


class Demo:
    """The demo's pieces, and the timeline they print."""

    def __init__(self, aws: testbed.LocalAws, out: Callable[[str], None]) -> None:
        self.aws = aws
        aws.client("ecs").create_cluster(clusterName=CLUSTER)
        self.queues = testbed.create_queues(
            aws, "scaler-demo", max_receive=MAX_RECEIVE, visibility=5
        )
        testbed.route_events(aws, self.queues)
        self.world = MotoWorld(aws, CLUSTER, out)
        self.sim = Sim(
            demo_scenario(),
            Bridge(self.world),
            seed=7,
            world=self.world,
            notice=NOTICE,
            signal_delay=0.5,
        )
        self.ledger = LossLedger(self.sim.scenario.hot_threshold, self._why_missing)
        self.sim.acct = self.ledger
        self.sim.begin()
        self.world.add_group(self.sim, SPOT_GROUP, "spot", DEMO_TYPE.name, list(AZS))
        self.world.add_group(self.sim, ON_DEMAND_GROUP, "on-demand", DEMO_TYPE.name, list(AZS))
        stranger = testbed.launch_instances(aws, 1, az="us-east-1c")[0]
        self.injected = _inject(aws, self.queues, stranger)
        self.decisions: set[str] = set()
        self._sqs = aws.client("sqs")

    def _why_missing(self, task: Task, reason: str) -> str:
        if reason == "drained" and task.instance is not None:
            if task.instance.id in self.world.warned_at:
                return (
                    "stopped on an instance drained for its spot notice before their "
                    "replacements were healthy"
                )
            return (
                "stopped on an instance drained to give it back to spot before their "
                "replacements were healthy"
            )
        if reason == "instance-terminated":
            return "lost with their instance when its notice ended"
        return f"stopped ({reason})"

    def step(self, elapsed: float) -> None:
        """Mirror the scaler's changes into the model, then let the model run to ``elapsed``."""
        self.world.sync_draining(self.sim)
        self.world.sync_groups(self.sim)
        self.sim.step_until(elapsed)
        if not self.injected.dead_lettered:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=self.queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            line = self.injected.arrived(int(attrs["ApproximateNumberOfMessages"]))
            if line:
                self.world.say(line)

    def tell(self, record: logging.LogRecord) -> None:
        """A timeline line, as the scaler logs it, for what it did with an injected message or
        for a capacity decision."""
        if record.name == INTAKE:
            line = self.injected.explain(record)
        elif record.getMessage() == "capacity decision":
            line = self._decision(str(getattr(record, "reason", "")))
        else:
            line = None
        if line:
            self.world.say(line)

    def _decision(self, reason: str) -> str | None:
        if not reason or reason in self.decisions:
            return None
        self.decisions.add(reason)
        why = ""
        if reason.startswith(f"top-up {ON_DEMAND_GROUP}:"):
            why = (
                f" (on-demand fallback: {SPOT_GROUP} was just interrupted and is avoided for "
                f"SCALER_POOL_COOLDOWN={QUIET:.0f}s)"
            )
        elif reason.startswith("return to spot"):
            why = f" (no spot trouble for SCALER_REVERT_AFTER={QUIET:.0f}s)"
        return f"scaler decides: {reason}{why}"

    def settled(self) -> bool:
        """Everything the demo shows has happened, and the cluster is back at rest."""
        sim = self.sim
        healthy = all(  # a surplus task of ECS's own AZ rebalancing may still be starting
            _healthy(s, sim.now) >= s.spec.desired for s in sim.cluster.services.values()
        )
        return (
            healthy
            and self.injected.settled
            and bool(self.world.given_back)
            and not sim.doomed
            and all(i.status == ACTIVE for i in sim.cluster.instances.values())
            and not any(i.capacity == "on-demand" for i in sim.cluster.instances.values())
        )


async def _drive(scaler: Scaler, demo: Demo, limit: float) -> str:
    """Step the model in real time beside the running scaler until the demo has settled; why
    it ended."""
    stop = asyncio.Event()
    runner = asyncio.create_task(scaler.run(stop))
    started = asyncio.create_task(scaler.started.wait())
    await asyncio.wait({runner, started}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if scaler.http is not None:
        demo.world.say(
            f"the scaler is running; metrics at http://127.0.0.1:{scaler.http.port}/metrics"
        )
    for line in demo.injected.introduce():
        demo.world.say(line)
    began = time.monotonic()
    ended = "the scaler stopped"
    while not runner.done():
        elapsed = time.monotonic() - began
        if elapsed >= min(limit, LENGTH):
            ended = f"stopped after {elapsed:.0f}s without settling"
            break
        await asyncio.to_thread(demo.step, elapsed)
        if demo.settled():
            ended = f"settled after {elapsed:.0f}s"
            break
        await asyncio.sleep(0.25)
    stop.set()
    await runner
    return ended


def run_demo(out: Callable[[str], None] = print, timeout: float = 60.0) -> int:
    """The scaler against a local AWS whose ECS behaves like ECS; 0 if no task was lost."""
    began = time.monotonic()
    with testbed.local_aws() as aws:
        out(
            f"local AWS endpoint {aws.endpoint}; the demo's clock runs 6x faster than AWS's "
            f"(spot notice {NOTICE:.0f} s)"
        )
        demo = Demo(aws, out)
        sim = demo.sim
        out(
            f"cluster {CLUSTER!r}: {len(sim.cluster.instances)} spot instances in Auto Scaling "
            f"group {SPOT_GROUP} (on-demand fallback: {ON_DEMAND_GROUP}, empty), "
            f"{sum(len(s.tasks) for s in sim.cluster.services.values())} service tasks; "
            "a storm will reclaim a third of the spot instances"
        )
        scaler = Scaler(
            _settings(demo.queues.url),
            AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint),
        )
        demo.world.started = time.monotonic()
        budget = timeout - (time.monotonic() - began) - 3  # leave time to stop and report
        with witnessing(demo.tell, {INTAKE: logging.DEBUG, CAPACITY: logging.INFO}):
            ended = asyncio.run(_drive(scaler, demo, budget))
        sim.horizon = sim.now  # the run ends here, not at the scenario's length
        figures = sim.finish()
        _report(out, scaler, demo, figures, ended)
    # the process ends next: spare it a last collection over moto's large heap (a second or two)
    gc.freeze()
    return 0 if figures["interrupted_tasks"] == 0 else 1


def _report(
    out: Callable[[str], None],
    scaler: Scaler,
    demo: Demo,
    figures: dict[str, Any],
    ended: str,
) -> None:
    sim = demo.sim
    out(f"\nsummary ({ended})")
    out(
        f"  tasks lost with their instance: {figures['interrupted_tasks']}; "
        f"availability {figures['availability']:.4f} "
        f"({demo.ledger.missing_seconds:.1f} of {demo.ledger.want:.1f} healthy task-seconds "
        "missing)"
    )
    for line in demo.ledger.explain():
        out(f"    {line}")
    out(
        "  services healthy/desired: "
        + ", ".join(
            f"{s.spec.name} {_healthy(s, sim.now)}/{s.spec.desired}"
            for s in sim.cluster.services.values()
        )
    )
    capacity = Counter(i.capacity for i in sim.cluster.instances.values())
    out(
        "  instances now: "
        + ", ".join(f"{n} {c}" for c, n in sorted(capacity.items()))
        + "; capacity changes: "
        + (
            ", ".join(f"{k}={v}" for k, v in sorted(capacity_changes(scaler.metrics).items()))
            or "none"
        )
    )
    seen = event_outcomes(scaler.metrics)
    out("  events: " + ", ".join(f"{k}={v}" for k, v in sorted(seen.items()) if v))
    out(
        f"  dead-letter queue: {testbed.queue_depth(demo.aws, demo.queues.dlq_url)} message(s) "
        f"({len(demo.injected.malformed)} malformed sent)"
    )
    calls = aws_calls(scaler.metrics)
    out("  scaler's AWS calls: " + ", ".join(f"{k}={v}" for k, v in sorted(calls.items())))


def _healthy(service: ServiceState, now: float) -> int:
    return sum(t.healthy(now) for t in service.tasks.values())


def capacity_changes(metrics: Metrics) -> dict[str, int]:
    """``change:reason`` -> instances, from the live metrics."""
    changes: dict[str, int] = {}
    for sample in next(iter(metrics.capacity_changes.collect())).samples:
        if sample.name.endswith("_total") and sample.value:
            key = f"{sample.labels['change']}:{sample.labels['reason']}"
            changes[key] = changes.get(key, 0) + int(sample.value)
    return changes
