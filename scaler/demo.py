"""``scaler demo``: the real scaler against an embedded local AWS, start to finish, no account.

It builds a small cluster in an embedded moto server, publishes a burst of events through
EventBridge (spot interruption warnings, rebalance recommendations, events for another cluster's
instances, an unknown event type) and puts duplicates and malformed messages straight on the
queue. Then it runs the same :class:`~scaler.loop.Scaler` that ``scaler run`` runs, serving
``/metrics`` meanwhile, until every event has an outcome and the malformed messages have reached
the dead-letter queue, and prints what happened.
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
from scaler.loop import Scaler
from scaler.metrics import Metrics
from scaler.settings import Settings, load_settings

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
        visibility_timeout=10,
        shutdown_grace=5,
    )


def run_demo(out: Callable[[str], None] = print, timeout: float = 60.0) -> int:
    """Build the local cluster, play the burst, print the outcome; 0 if all went as expected."""
    with testbed.local_aws() as aws:
        out(f"local AWS endpoint {aws.endpoint}")
        nodes = testbed.create_cluster(aws, CLUSTER, size=12)
        strangers = testbed.launch_instances(aws, 3, az="us-east-1b")
        queues = testbed.create_queues(aws, "scaler-demo", max_receive=2, visibility=1)
        testbed.route_events(aws, queues)
        members = [n.instance_id for n in nodes[:6]]
        burst = make_burst(members, strangers, duplicates=2, malformed=3, max_receive=2)
        testbed.put_events(aws, burst.published)
        testbed.send_raw(aws, queues.url, burst.raw)
        out(
            f"cluster {CLUSTER!r}: {len(nodes)} container instances; "
            f"published {len(burst.published)} events, {len(burst.raw)} raw messages"
        )
        settings = _settings(queues.url)
        scaler = Scaler(settings, AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint))

        def done() -> bool:
            dlq = testbed.queue_depth(aws, queues.dlq_url)
            return _reached(burst.expected, scaler.metrics) and dlq >= burst.malformed

        started = time.monotonic()
        ok = asyncio.run(run_until(scaler, done, timeout))
        _report(out, scaler, burst, aws, queues, time.monotonic() - started)
        return 0 if ok else 1


def _report(
    out: Callable[[str], None],
    scaler: Scaler,
    burst: Burst,
    aws: testbed.LocalAws,
    queues: testbed.Queues,
    elapsed: float,
) -> None:
    seen = event_outcomes(scaler.metrics)
    out(f"\nfinished in {elapsed:.1f}s")
    out(f"{'outcome':<16}{'expected':>10}{'seen':>8}")
    for outcome in sorted(set(burst.expected) | set(seen)):
        out(f"{outcome:<16}{burst.expected.get(outcome, 0):>10}{seen.get(outcome, 0):>8}")
    states = testbed.container_instance_states(aws, CLUSTER)
    draining = sorted(i for i, state in states.items() if state == "DRAINING")
    out(f"container instances DRAINING: {len(draining)} of {len(states)}: {', '.join(draining)}")
    out(
        f"dead-letter queue: {testbed.queue_depth(aws, queues.dlq_url)} message(s); "
        f"event queue: {testbed.queue_depth(aws, queues.url)} left"
    )
    calls = aws_calls(scaler.metrics)
    out("AWS calls: " + ", ".join(f"{k}={v}" for k, v in sorted(calls.items())))
