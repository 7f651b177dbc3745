"""Crash safety: ``scaler run`` SIGKILLed mid-burst, restarted, and nothing done twice that costs.

A cluster of N container instances (plus one spare, registered first, that no event concerns) and
a queue holding a spot interruption warning for each of the N, a few exact duplicates and a few
malformed bodies. The first process is killed with SIGKILL (no grace, no release of in-flight
messages) once some but not all instances are DRAINING; a second process starts on the same
queue. What the second process sees of the first's work is only what AWS holds:

- a message the first deleted is gone; one it had received but not deleted comes back after the
  queue's visibility timeout and is handled again (its dedup memory died with the process);
- an instance the first drained is DRAINING in ECS, so the second's directory (read after the
  kill) shows it DRAINING and ``decide`` leaves it alone: no second UpdateContainerInstancesState
  for it. (ECS would accept a repeat, so a repeat would be harmless; it cannot happen here because
  the second process starts after ECS applied everything the first sent.)
- the standalone task on the first instance is restarted once: its copy is started with
  ``startedBy``/``clientToken`` derived from the original task's ARN and the original is then
  stopped, so a redelivered warning finds either the copy (crash between RunTask and StopTask) or
  no standalone task left on the instance.

Drains are counted per instance from the outside: the drainer logs ``drained`` for each instance a
successful call set DRAINING (both processes' logs survive them), and ECS's own statuses right
after the kill catch a call ECS applied but the killed process never logged.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaler import testbed
from scaler.aws.tasks import restart_key
from tests.e2e.test_run_process import _get, _logs, _read_log, _terminate, scaler_process

N = 60
CLUSTER = "prod"
GROUP = "batch:nightly"
KILL_AFTER = 12  # DRAINING instances seen before the kill (of N)
MALFORMED = ["not json", "[1, 2]", '{"id": "no-envelope"}']
ENV = {
    "SCALER_RESTART_STANDALONE_TASKS": "true",
    # slow enough that a burst of 60 takes a few seconds, so the kill lands in the middle
    "SCALER_CONCURRENCY": "3",
    "SCALER_DRAIN_BATCH_WINDOW": "0.4",
    # the queue hides a received message 3 s; extensions must not hide one much longer
    "SCALER_VISIBILITY_TIMEOUT": "5",
    "SCALER_RETRY_DELAY": "1",
}


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def _drained(log: str) -> Counter[str]:
    """EC2 instance id -> ``drained`` records in one process's log."""
    return Counter(r["instance_id"] for r in _logs(log) if r.get("message") == "drained")


def _draining(aws: testbed.LocalAws, ids: list[str]) -> set[str]:
    states = testbed.container_instance_states(aws, CLUSTER)
    return {i for i in ids if states.get(i) == "DRAINING"}


def _group_tasks(aws: testbed.LocalAws) -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER)["taskArns"]  # moto: every desired status
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t.get("group") == GROUP]


def _instance_count(aws: testbed.LocalAws) -> int:
    pages = aws.client("ec2").get_paginator("describe_instances").paginate()
    return sum(len(r["Instances"]) for page in pages for r in page["Reservations"])


def _dlq_bodies(aws: testbed.LocalAws, url: str) -> list[str]:
    sqs, bodies = aws.client("sqs"), list[str]()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return bodies
        bodies.extend(m["Body"] for m in got["Messages"])


def _until(condition: Any, limit: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


@pytest.mark.slow
def test_sigkill_mid_burst_then_restart_does_nothing_twice(
    local_aws: testbed.LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = local_aws
    testbed.manual_task_states(aws)
    aws.client("ecs").create_cluster(clusterName=CLUSTER)
    launched = testbed.launch_instances(aws, N + 1)
    # the spare first: moto's RunTask places on the first ACTIVE instance with room
    spare = testbed.register_instances(aws, CLUSTER, launched[:1], "us-east-1a")[0]
    nodes = testbed.register_instances(aws, CLUSTER, launched[1:], "us-east-1a")
    ids = [n.instance_id for n in nodes]
    instances_before = _instance_count(aws)

    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="nightly",
        containerDefinitions=[{"name": "job", "image": "busybox", "cpu": 128, "memory": 128}],
    )
    original = ecs.start_task(
        cluster=CLUSTER,
        taskDefinition="nightly",
        containerInstances=[nodes[0].container_instance_arn],
        group=GROUP,
    )["tasks"][0]

    queues = testbed.create_queues(aws, "events", max_receive=3, visibility=3)
    warnings = [testbed.spot_warning(i) for i in ids]
    bodies = [json.dumps(w) for w in warnings]
    duplicates = bodies[:5]  # the same events (same ids) delivered twice
    burst = bodies[:5] + duplicates + bodies[5:] + MALFORMED
    testbed.send_raw(aws, queues.url, burst)

    # -- the first process, killed mid-burst ----------------------------------------------
    with scaler_process(aws, queues.url, **ENV) as first:
        cut = _until(lambda: len(_draining(aws, ids)) >= KILL_AFTER, limit=20)
        last_scrape = _get(first.base_url + "/metrics")[1]
        first.kill()  # SIGKILL: no grace, nothing released
        first.wait()
        first_log = _read_log(first)
    assert cut, "the first process drained too little in 20 s"
    time.sleep(0.5)  # let moto finish any request the killed process had sent
    at_kill = _draining(aws, ids)
    assert 0 < len(at_kill) < N, f"the burst should be cut in the middle ({len(at_kill)}/{N})"
    first_records = _logs(first_log)
    handled_before = sum(1 for r in first_records if r.get("outcome") == "handled")
    drained_first = _drained(first_log)
    # SQS redelivers at least once: copies of events the first process may have handled
    redelivered = [bodies[0], bodies[1], bodies[-1]]
    testbed.send_raw(aws, queues.url, redelivered)

    # -- the second process finishes the job ----------------------------------------------
    with scaler_process(aws, queues.url, **ENV) as second:

        def done() -> bool:
            return (
                len(_draining(aws, ids)) == N
                and testbed.queue_depth(aws, queues.url) == 0
                and testbed.queue_depth(aws, queues.dlq_url) == len(MALFORMED)
            )

        finished = _until(done, limit=40, poll=0.2)
        health = _get(second.base_url + "/healthz")
        metrics = _get(second.base_url + "/metrics")[1]
        _, second_log = _terminate(second)
    assert second.returncode == 0, second_log[-2000:]
    drained_second = _drained(second_log)
    handled_after = sum(1 for r in _logs(second_log) if r.get("outcome") == "handled")

    # per instance: logged drains of both processes, plus a drain ECS applied that the killed
    # process never got to log
    unlogged = at_kill - drained_first.keys()
    drains = Counter({i: drained_first[i] + drained_second[i] for i in ids})
    drains.update(unlogged)
    tasks = _group_tasks(aws)
    copies = [t for t in tasks if t.get("startedBy") == restart_key(original["taskArn"])]
    figures = {
        "events_sent": len(burst) + len(redelivered),
        "warnings": N,
        "duplicates": len(duplicates) + len(redelivered),
        "malformed": len(MALFORMED),
        "draining_at_kill": len(at_kill),
        "handled_before_kill": handled_before,
        "handled_after_restart": handled_after,
        "drains_first": sum(drained_first.values()),
        "drains_first_unlogged": len(unlogged),
        "drains_second": sum(drained_second.values()),
        "drain_calls_first_at_last_scrape": metric(
            last_scrape,
            "scaler_aws_calls_total",
            operation="UpdateContainerInstancesState",
            outcome="ok",
        ),
        "drain_calls_second": metric(
            metrics, "scaler_aws_calls_total", operation="UpdateContainerInstancesState"
        ),
        "restarts_first_at_last_scrape": metric(
            last_scrape, "scaler_standalone_task_restarts_total", outcome="restarted"
        ),
        "restarts_second": metric(
            metrics, "scaler_standalone_task_restarts_total", outcome="restarted"
        ),
        "group_tasks": len(tasks),
        "duplicates_first_at_last_scrape": metric(
            last_scrape, "scaler_events_total", outcome="duplicate"
        ),
        "duplicates_second": metric(metrics, "scaler_events_total", outcome="duplicate"),
    }
    with capsys.disabled():  # the figures belong in CI's output
        print(f"\ncrash figures: {json.dumps(figures)}")

    assert finished, f"not done in 40 s: {figures}"
    assert _draining(aws, ids) == set(ids)
    assert set(drains.values()) == {1}, {i: c for i, c in drains.items() if c != 1}
    assert not drained_second.keys() & at_kill, "the second process drained a DRAINING instance"
    assert metric(metrics, "scaler_drained_instances_total") == N - len(at_kill)
    # nothing that costs money or tasks happened twice
    assert _instance_count(aws) == instances_before
    assert testbed.container_instance_states(aws, CLUSTER)[spare.instance_id] == "ACTIVE"
    assert len(tasks) == 2, tasks  # the original and exactly one copy
    by_arn = {t["taskArn"]: t for t in tasks}
    assert by_arn[original["taskArn"]]["desiredStatus"] == "STOPPED"
    assert len(copies) == 1
    assert copies[0]["desiredStatus"] == "RUNNING"
    assert copies[0]["containerInstanceArn"] == spare.container_instance_arn
    # the queue is empty, nothing in flight, the malformed bodies (only they) in the DLQ
    assert testbed.queue_depth(aws, queues.url) == 0
    assert metric(metrics, "scaler_inflight_messages") == 0
    assert sorted(_dlq_bodies(aws, queues.dlq_url)) == sorted(MALFORMED)
    assert health[0] == 200
