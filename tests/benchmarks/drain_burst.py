"""Benchmark: a burst of N spot interruption warnings, the scaler against a naive consumer.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.drain_burst               # N = 500
    .venv/bin/python -m tests.benchmarks.drain_burst --instances 100 --json-only

What it measures
----------------
One embedded moto server (:func:`scaler.testbed.local_aws`) serves two runs of the same scenario,
each against fresh state (``aws.reset()`` then a new cluster and queue):

- an ECS cluster ``bench`` with N registered container instances, and an event queue with a
  dead-letter queue (``maxReceiveCount`` 5, visibility 30 s);
- a burst of N ``EC2 Spot Instance Interruption Warning`` events, one per instance, put straight on
  the queue (10 per ``SendMessageBatch``). Each message's send time is the wall time at which its
  batch call returned; ``t0`` is the time the last batch returned.

The consumer starts after the whole burst is on the queue; its start-up (opening clients, checking
the queue and cluster) is inside every latency below.

Run ``scaler``
    The real :class:`scaler.loop.Scaler` (``SCALER_CONCURRENCY=50``, ``SCALER_WAIT_TIME=1``, other
    settings at their defaults: one shared, cached instance directory and drains batched 10 a call
    within a 0.25 s window). An instance counts as drained when the drainer logs ``drained`` for it
    (the log record's time is the completion time); the run stops when all N have been.

Run ``naive``
    A baseline defined here: 10 asyncio workers, each looping over ``ReceiveMessage``
    (1 message, 1 s long poll), :func:`scaler.events.parse_event`, a lookup of the instance's
    container instance, one ``UpdateContainerInstancesState`` for that one container instance,
    then ``DeleteMessage``. ECS cannot look a container instance up by EC2 instance id, so the
    lookup is a map built from ``ListContainerInstances`` (paginated) and
    ``DescribeContainerInstances`` (100 a call). The baseline is deliberately generous: the map is
    shared by the workers and refreshed only on a miss, one refresh at a time (a worker that waited
    for the lock re-checks the map first), so the whole burst costs about one refresh. What makes
    it naive is what it lacks: no batching of drains (one update call per instance), no batching
    of deletes, no gathering window. An instance counts as drained when its update call returns.

Both runs use counted aiobotocore clients (:class:`scaler.aws.clients.AwsClients`), so their
``calls_by_operation`` are counted the same way. After each run a separate, uncounted boto3 client
checks that every container instance is ``DRAINING``.

Reading the output
------------------
stdout gets one JSON object at the end (progress and a short summary go to stderr unless
``--json-only``)::

    {"instances": N, "python": ..., "moto": ...,
     "runs": {"scaler": {...}, "naive": {...}},
     "comparison": {"ecs_call_ratio": naive/scaler, "p99_ratio": naive/scaler}}

Each run has:

- ``seconds_to_all_draining``: from ``t0`` to the last instance's drain (null if not all drained);
- ``latency_p50_s``, ``latency_p99_s``: per instance, drain completion minus its message's send
  time (nearest-rank percentiles over the drained instances);
- ``ecs_calls``: every ``ecs:*`` call the consumer made, and
  ``update_container_instances_state_calls`` of those;
- ``calls_by_operation``: ``service:Operation`` -> calls (SQS included);
- ``drained``: instances seen drained by the consumer; ``all_draining``: the independent check;
- ``finished``: the run reached its goal before its time limit; ``run_seconds``: its wall time.

``ecs_call_ratio`` above 1 means the naive consumer needed that many times more ECS calls;
``p99_ratio`` above 1 means its slowest drains took that many times longer. Latencies are wall
times against a local moto server that shares this process's interpreter (and GIL) with the
consumer, so they show relative cost, not what AWS would answer. The script never fails on wall
time (or on anything it measures): it exits 0 with the JSON, whose ``finished`` and
``all_draining`` say whether each run completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.demo import aws_calls, run_until
from scaler.events import SpotInterruption, parse_event
from scaler.loop import Scaler
from scaler.metrics import Metrics
from tests.integration.helpers import settings_for

CLUSTER = "bench"
QUEUE = "bench-events"
LIMIT = 300.0  # seconds each run may take before it is stopped
SEND_BATCH = 10
NAIVE_WORKERS = 10
DESCRIBE_BATCH = 100

log = logging.getLogger("bench")


# -- the scenario ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """The cluster and queue of one run, and when each warning was put on the queue."""

    queues: testbed.Queues
    instance_ids: list[str]
    sent_at: dict[str, float]  # instance id -> wall time its batch call returned
    t0: float  # wall time the last batch call returned


def prepare(aws: testbed.LocalAws, n: int) -> Burst:
    """Fresh state: the cluster, the queue and its DLQ, and the burst of N warnings on it."""
    aws.reset()
    nodes = testbed.create_cluster(aws, CLUSTER, size=n)
    queues = testbed.create_queues(aws, QUEUE, max_receive=5, visibility=30)
    ids = [node.instance_id for node in nodes]
    sent_at: dict[str, float] = {}
    for i in range(0, n, SEND_BATCH):
        chunk = ids[i : i + SEND_BATCH]
        testbed.send_raw(aws, queues.url, [json.dumps(testbed.spot_warning(iid)) for iid in chunk])
        now = time.time()
        sent_at.update(dict.fromkeys(chunk, now))
    return Burst(queues, ids, sent_at, t0=max(sent_at.values()))


@dataclass
class RunResult:
    name: str
    drained_at: dict[str, float]  # instance id -> wall time its drain completed
    calls: dict[str, int]
    finished: bool
    run_seconds: float
    all_draining: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(result: RunResult, burst: Burst) -> dict[str, Any]:
    latencies = [at - burst.sent_at[iid] for iid, at in result.drained_at.items()]
    complete = len(result.drained_at) == len(burst.instance_ids)
    ecs = {k: v for k, v in result.calls.items() if k.startswith("ecs:")}
    return {
        "seconds_to_all_draining": (
            _round(max(result.drained_at.values()) - burst.t0) if complete else None
        ),
        "latency_p50_s": _round(percentile(latencies, 50)),
        "latency_p99_s": _round(percentile(latencies, 99)),
        "ecs_calls": sum(ecs.values()),
        "update_container_instances_state_calls": ecs.get("ecs:UpdateContainerInstancesState", 0),
        "calls_by_operation": dict(sorted(result.calls.items())),
        "drained": len(result.drained_at),
        "all_draining": result.all_draining,
        "finished": result.finished,
        "run_seconds": _round(result.run_seconds),
        **result.extra,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def verify(aws: testbed.LocalAws, burst: Burst) -> bool:
    """Every container instance of the burst is DRAINING (an uncounted boto3 client asks)."""
    states = testbed.container_instance_states(aws, CLUSTER)
    return all(states.get(iid) == "DRAINING" for iid in burst.instance_ids)


# -- run A: the scaler ----------------------------------------------------------------------


class DrainedRecords(logging.Handler):
    """Collects the drainer's ``drained`` records: instance id -> the record's time."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.drained_at: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        instance_id = getattr(record, "instance_id", None)
        if record.getMessage() == "drained" and isinstance(instance_id, str):
            self.drained_at.setdefault(instance_id, record.created)


def run_scaler(aws: testbed.LocalAws, burst: Burst, capture: DrainedRecords) -> RunResult:
    capture.drained_at = {}
    settings = settings_for(burst.queues.url, cluster=CLUSTER, concurrency=50, wait_time=1)
    scaler = Scaler(settings, AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint))
    wanted = len(burst.instance_ids)

    def done() -> bool:
        return len(capture.drained_at) >= wanted

    started = time.monotonic()
    finished = asyncio.run(run_until(scaler, done, limit=LIMIT))
    elapsed = time.monotonic() - started
    drained = {i: t for i, t in capture.drained_at.items() if i in burst.sent_at}
    return RunResult("scaler", drained, aws_calls(scaler.metrics), finished, elapsed)


# -- run B: the naive consumer --------------------------------------------------------------


class NaiveConsumer:
    """One message at a time per worker, one drain call per instance (see the module docstring)."""

    def __init__(self, aws: AwsClients, cluster: str, queue_url: str) -> None:
        self._aws = aws
        self._cluster = cluster
        self._queue_url = queue_url
        self._by_instance: dict[str, str] = {}  # EC2 instance id -> container instance ARN
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0
        self.drained_at: dict[str, float] = {}

    async def run(self, workers: int, done: Callable[[], bool], limit: float) -> bool:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self._worker(stop)) for _ in range(workers)]
        deadline = time.monotonic() + limit
        ok = False
        try:
            while time.monotonic() < deadline:
                if done():
                    ok = True
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        return ok

    async def _worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                reply = await self._aws.sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1
                )
                for message in reply.get("Messages", []):
                    await self._handle(message)
            except Exception as exc:
                log.warning("naive worker: %r", exc)
                await asyncio.sleep(1)

    async def _handle(self, message: dict[str, Any]) -> None:
        signal = parse_event(message["Body"])
        if isinstance(signal, SpotInterruption):
            arn = await self._lookup(signal.instance_id)
            if arn is not None:
                await self._aws.ecs.update_container_instances_state(
                    cluster=self._cluster, containerInstances=[arn], status="DRAINING"
                )
                self.drained_at.setdefault(signal.instance_id, time.time())
        await self._aws.sqs.delete_message(
            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
        )

    async def _lookup(self, instance_id: str) -> str | None:
        if instance_id not in self._by_instance:
            async with self._refresh_lock:
                if instance_id not in self._by_instance:  # another worker may have refreshed
                    await self._refresh()
        return self._by_instance.get(instance_id)

    async def _refresh(self) -> None:
        self.refreshes += 1
        ecs = self._aws.ecs
        arns: list[str] = []
        paginator = ecs.get_paginator("list_container_instances")
        async for page in paginator.paginate(
            cluster=self._cluster, PaginationConfig={"PageSize": 100}
        ):
            arns.extend(page.get("containerInstanceArns", []))
        for i in range(0, len(arns), DESCRIBE_BATCH):
            reply = await ecs.describe_container_instances(
                cluster=self._cluster, containerInstances=arns[i : i + DESCRIBE_BATCH]
            )
            for ci in reply.get("containerInstances", []):
                self._by_instance[ci["ec2InstanceId"]] = ci["containerInstanceArn"]


def run_naive(aws: testbed.LocalAws, burst: Burst) -> RunResult:
    metrics = Metrics()
    wanted = set(burst.instance_ids)
    consumer: NaiveConsumer | None = None

    async def main() -> bool:
        nonlocal consumer
        target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint)
        async with AwsClients(target, metrics) as clients:
            consumer = NaiveConsumer(clients, CLUSTER, burst.queues.url)
            current = consumer
            return await current.run(
                NAIVE_WORKERS, lambda: wanted <= current.drained_at.keys(), LIMIT
            )

    started = time.monotonic()
    finished = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert consumer is not None
    drained = {i: t for i, t in consumer.drained_at.items() if i in wanted}
    return RunResult(
        "naive",
        drained,
        aws_calls(metrics),
        finished,
        elapsed,
        extra={"map_refreshes": consumer.refreshes},
    )


# -- the script -----------------------------------------------------------------------------


def configure_logging(json_only: bool) -> DrainedRecords:
    """Root at WARNING; the drainer's INFO records go only to the capture handler."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    log.setLevel(logging.WARNING if json_only else logging.INFO)
    capture = DrainedRecords()
    drainer = logging.getLogger("scaler.aws.drainer")
    drainer.setLevel(logging.INFO)
    drainer.propagate = False
    drainer.addHandler(capture)
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    drainer.addHandler(warnings)
    return capture


def _ratio(naive: float | None, scaler: float | None) -> float | None:
    if naive is None or not scaler:
        return None
    return round(naive / scaler, 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--instances", type=int, default=500, help="burst size (default 500)")
    parser.add_argument("--json-only", action="store_true", help="nothing on stderr but warnings")
    args = parser.parse_args(argv)
    n: int = args.instances
    if n < 1:
        parser.error("--instances must be at least 1")
    capture = configure_logging(args.json_only)

    runs: dict[str, dict[str, Any]] = {}
    with testbed.local_aws() as aws:
        for name in ("scaler", "naive"):
            log.info("%s: preparing %d instances and %d warnings", name, n, n)
            burst = prepare(aws, n)
            log.info("%s: burst sent; running", name)
            result = run_scaler(aws, burst, capture) if name == "scaler" else run_naive(aws, burst)
            result.all_draining = verify(aws, burst)
            runs[name] = summarize(result, burst)
            log.info("%s: %s", name, json.dumps(runs[name]))

    scaler, naive = runs["scaler"], runs["naive"]
    report = {
        "instances": n,
        "python": platform.python_version(),
        "moto": version("moto"),
        "runs": runs,
        "comparison": {
            "ecs_call_ratio": _ratio(naive["ecs_calls"], scaler["ecs_calls"]),
            "p99_ratio": _ratio(naive["latency_p99_s"], scaler["latency_p99_s"]),
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
