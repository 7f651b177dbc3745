"""A burst of 1,000 events while AWS misbehaves, end to end over real HTTP.

The scaler runs as a process pointed at :class:`tests.e2e.fault_proxy.FaultProxy`, which sits in
front of the local AWS: half of all ECS calls are throttled for 10 s, the endpoint goes down
once (a restart: every connection dropped for 2 s), some SQS deletes and ECS drains are carried
out but their answers lost, and SQS receives are slowed. The burst: 10% malformed bodies, 5%
duplicates, 20% events for instances of another cluster, the rest spot warnings, rebalance
recommendations and stop notices for this cluster's 100 instances.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator

import pytest

from scaler import testbed
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.e2e.test_run_process import _get, _read_log, _terminate, scaler_process

INSTANCES = 100
EVENTS = 1000
MALFORMED = ['{"truncated": ', "not json at all", "[1, 2, 3]", json.dumps({"id": "x"})]
FAULTS = [
    Fault("down", start=4.0, end=6.0),  # the endpoint restarts
    Fault("throttle", "ecs:*", rate=0.5, start=0.0, end=10.0),
    Fault("lost", "sqs:DeleteMessageBatch", rate=0.1, start=0.0, end=10.0),
    Fault("lost", "ecs:UpdateContainerInstancesState", rate=0.2, start=0.0, end=10.0),
    Fault("error", "sqs:ChangeMessageVisibility*", rate=0.2, start=0.0, end=10.0),
    Fault("latency", "sqs:ReceiveMessage", rate=0.3, start=0.0, end=10.0, delay=0.5),
]


@pytest.fixture
def proxy(local_aws: testbed.LocalAws) -> Iterator[FaultProxy]:
    running = FaultProxy(local_aws.endpoint, FAULTS).start()
    yield running
    running.stop()


def _burst(members: list[str], strangers: list[str], rng: random.Random) -> tuple[list[str], int]:
    """The bodies, shuffled, and how many valid events they hold."""
    malformed = EVENTS // 10
    duplicates = EVENTS // 20
    foreign = EVENTS // 5
    valid = EVENTS - malformed - duplicates - foreign
    makers = [
        testbed.spot_warning,
        testbed.rebalance_recommendation,
        lambda iid: testbed.state_change(iid, "stopping"),
    ]
    events = [testbed.spot_warning(iid) for iid in members]  # every instance at least once
    events += [rng.choice(makers)(rng.choice(members)) for _ in range(valid - len(members))]
    bodies = [json.dumps(e) for e in events]
    bodies += rng.sample(bodies, duplicates)  # the same event, delivered twice
    bodies += [json.dumps(testbed.spot_warning(rng.choice(strangers))) for _ in range(foreign)]
    bodies += [MALFORMED[i % len(MALFORMED)] for i in range(malformed)]
    rng.shuffle(bodies)
    return bodies, valid


def _outcomes(metrics: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for outcome, value in re.findall(
        r'scaler_events_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)', metrics
    ):
        found[outcome] = found.get(outcome, 0) + int(float(value))
    return found


@pytest.mark.slow
def test_a_thousand_events_while_aws_misbehaves(
    local_aws: testbed.LocalAws, proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(7)
    nodes = testbed.create_cluster(local_aws, "prod", size=INSTANCES)
    others = testbed.create_cluster(local_aws, "other", size=20, az="us-east-1b")
    members = [n.instance_id for n in nodes]
    strangers = [n.instance_id for n in others] + testbed.launch_instances(local_aws, 5)
    ec2_before = _instance_count(local_aws)
    queues = testbed.create_queues(local_aws, "events", max_receive=5, visibility=3)
    bodies, valid = _burst(members, strangers, rng)

    env = {"AWS_ENDPOINT_URL": proxy.endpoint, "SCALER_CONCURRENCY": "40"}
    started = time.monotonic()
    with scaler_process(local_aws, queues.url, **env) as proc:
        proxy.arm()  # the faults' windows start with the burst
        testbed.send_raw(local_aws, queues.url, bodies)
        # a bound on waiting, not a figure: it ends as soon as the queues have settled
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            settled = testbed.queue_depth(local_aws, queues.url) == 0
            if settled and testbed.queue_depth(local_aws, queues.dlq_url) >= EVENTS // 10:
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        status, metrics = _get(proc.base_url + "/metrics")
        health = _get(proc.base_url + "/healthz")[0]
        elapsed, _ = _terminate(proc)
        log = _read_log(proc)

    states = testbed.container_instance_states(local_aws, "prod")
    outcomes = _outcomes(metrics)
    figures = {
        "events": len(bodies),
        "valid": valid,
        "seconds": round(took, 1),
        "outcomes": outcomes,
        "proxy": proxy.report(),
        "dlq": testbed.queue_depth(local_aws, queues.dlq_url),
        "draining": sum(s == "DRAINING" for s in states.values()),
        "stop_seconds": round(elapsed, 1),
    }
    with capsys.disabled():  # the figures belong in CI's output
        print(f"\nfault test figures: {json.dumps(figures)}")
    assert status == 200 and health == 200, log[-3000:]
    assert figures["proxy"]["injected"], "faults were injected"  # type: ignore[index]
    # every valid instance drained, none of the other cluster's touched
    assert all(states[iid] == "DRAINING" for iid in members), log[-3000:]
    assert all(
        s == "ACTIVE" for s in testbed.container_instance_states(local_aws, "other").values()
    )
    # malformed bodies end in the dead-letter queue, and nothing else does
    assert testbed.queue_depth(local_aws, queues.dlq_url) == EVENTS // 10
    assert testbed.queue_depth(local_aws, queues.url) == 0
    # each valid event handled once; its copies (and redeliveries after a lost delete) are
    # duplicates, never handled again
    assert outcomes.get("handled") == valid
    assert outcomes.get("duplicate", 0) >= EVENTS // 20
    assert outcomes.get("other_cluster", 0) >= EVENTS // 5
    assert outcomes.get("failed", 0) >= 0  # retried ones come back and are handled
    # no capacity launched: nothing here asks for it, faults or not
    assert _instance_count(local_aws) == ec2_before


def _instance_count(aws: testbed.LocalAws) -> int:
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    return sum(len(r["Instances"]) for r in reservations)
