"""Benchmark: a soak run. A steady stream of events for minutes: does the scaler's memory stay flat?

Run from the project root::

    .venv/bin/python -m tests.benchmarks.soak                          # 240 s, 10 events/s
    .venv/bin/python -m tests.benchmarks.soak --seconds 600 --rate 20 --dedup-ttl 30

What it does
------------
One embedded moto server (:func:`scaler.testbed.local_aws`) holds an ECS cluster ``soak`` (a few
container instances to start with), a cluster ``other`` of 20 instances, and the event queue with
its dead-letter queue (``maxReceiveCount`` 2, visibility 5 s). ``scaler run`` runs as a separate
process (:func:`tests.e2e.test_run_process.scaler_process`), so its memory is its own, with a short
``SCALER_DEDUP_TTL`` (``--dedup-ttl``, default 30 s) and ``SCALER_INSTANCE_CACHE_TTL`` (10 s): a run
several TTLs long shows whether the dedup cache and the instance directory stay bounded.

Every second the feeder puts ``--rate`` events on the queue (10 per ``SendMessageBatch``), mixed:

- 40 % spot warnings for *fresh* instances of ``soak``: each slot registers a new container
  instance and warns the oldest one registered at least 5 s before, as a cluster that keeps
  replacing reclaimed capacity would (in the first 5 s a slot only registers). The lead matters:
  a warning that arrives within 2 s of the start of the directory refresh before its instance's
  registration is taken for another cluster's (see :mod:`scaler.aws.ecs`,
  ``min_refresh_interval``); real instances register minutes before any warning;
- 40 % spot warnings for instances of ``other`` (``other_cluster``);
- 15 % exact copies (same event id) of a recent warning: ``duplicate`` within the TTL, handled
  again (a no-op: already DRAINING, or gone) after it;
- 5 % malformed bodies (they reach the dead-letter queue);

and, on top of that rate, an EC2 ``terminated`` state change for each warned instance 20 s after
its warning (the scaler deregisters it). So the cluster holds a steady ~100 container instances
however long the run (``cluster_size`` in the samples): memory that grows is the scaler's, not
the cluster's.

Every ``--sample-every`` seconds (default 5) it records the process's RSS (``VmRSS`` in
``/proc/<pid>/status``), the events handled so far (``/metrics``) and the event-to-drain latency
of the drains completed in that window: from the wall time the warning's batch send returned to
the time of the drainer's ``drained`` log record for that instance (read from the process's log
while it runs, through ``/proc/<pid>/fd/2``, so the writer's file offset is left alone).

Memory is judged on the samples after a warm-up (``--warmup``, default 10 % of the run; imports
and first calls fill caches): the mean RSS of the last quarter against the first quarter
(``rss_growth_pct``), and the least-squares slope in MiB per minute over each half. The verdict
``memory_flat`` is growth under 5 % *and* a second-half slope near 0 (at most 0.25 MiB/min, or
half the first half's): a steady climb that a short run keeps under 5 % is not flat. The
``settled`` sample, taken after the feed stopped and the last drains were seen, is reported apart
and left out of the verdict. Nothing here fails on wall time: the script prints one JSON
object and exits 0 whatever it measured (a feeder that cannot keep up shows in ``sent_rate``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from scaler import testbed
from tests.e2e.test_run_process import _get, _terminate, scaler_process

CLUSTER = "soak"
OTHER = "other"
AZ = "us-east-1a"
LAUNCH_BATCH = 100
INITIAL_SIZE = 5
REGISTER_LEAD = 5.0  # seconds an instance is registered before its warning (see below)
TERMINATE_AFTER = 20.0  # seconds between an instance's warning and its `terminated` event
FLAT_GROWTH_PCT = 5.0
FLAT_SLOPE = 0.25  # MiB per minute: "near 0" for the second half's slope
MIX = (  # kind, share of the stream
    ("fresh", 0.40),
    ("other", 0.40),
    ("duplicate", 0.15),
    ("malformed", 0.05),
)
MALFORMED = ("not json", "[1, 2]", '{"id": "no-envelope"}')


# -- reading the process ----------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def scrape(base_url: str) -> list[Any]:
    """Every sample of the process's /metrics."""
    status, text = _get(base_url + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: Sequence[Any], name: str, **labels: str) -> float:
    return float(
        sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
    )


def by_label(samples: Sequence[Any], name: str, label: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for s in samples:
        if s.name == name:
            counts[s.labels[label]] += int(s.value)
    return dict(sorted(counts.items()))


class LogTail:
    """The ``drained`` records of a running process's JSON log, read as they are written.

    Opening ``/proc/<pid>/fd/2`` gives a file description of our own: reading it moves no offset
    the process writes at.
    """

    def __init__(self, pid: int) -> None:
        self._file: TextIO = open(f"/proc/{pid}/fd/2", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._partial = ""
        self.drained_at: dict[str, float] = {}  # EC2 instance id -> drain time (epoch s)

    def poll(self) -> None:
        text = self._partial + self._file.read()
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            iid = record.get("instance_id")
            if record.get("message") == "drained" and isinstance(iid, str):
                when = datetime.fromisoformat(record["time"]).timestamp()
                self.drained_at.setdefault(iid, when)

    def close(self) -> None:
        self._file.close()


# -- the feed ---------------------------------------------------------------------------------


@dataclass
class Feed:
    """Builds and sends each second's events; remembers what it sent."""

    aws: testbed.LocalAws
    queue_url: str
    other_ids: list[str]
    rng: random.Random
    pool: list[str] = field(default_factory=list)  # launched EC2 instances not yet registered
    registered: deque[tuple[float, str]] = field(default_factory=deque)  # not warned yet
    warned: deque[tuple[float, str]] = field(default_factory=deque)  # fresh, oldest first
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=500))  # warning bodies
    sent: Counter[str] = field(default_factory=Counter)
    sent_at: dict[str, float] = field(default_factory=dict)  # fresh instance id -> send time
    registrations: int = 0
    carry: float = 0.0

    def tick(self, rate: float) -> None:
        self.carry += rate
        count, self.carry = int(self.carry), self.carry - int(self.carry)
        kinds = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX], k=count)
        bodies, fresh = [], []
        now = time.time()
        while self.warned and self.warned[0][0] <= now - TERMINATE_AFTER:
            iid = self.warned.popleft()[1]
            bodies.append(json.dumps(testbed.state_change(iid, "terminated")))
            self.sent["terminated"] += 1
        for kind in kinds:
            if kind == "fresh" and self._register(now):
                iid = self.registered.popleft()[1]
                fresh.append(iid)
                bodies.append(self._warning(iid))
            elif kind == "duplicate" and self.recent:
                bodies.append(self.rng.choice(self.recent))
            elif kind == "malformed":
                bodies.append(self.rng.choice(MALFORMED))
            else:
                kind = "other"
                bodies.append(self._warning(self.rng.choice(self.other_ids)))
            self.sent[kind] += 1
        if bodies:
            testbed.send_raw(self.aws, self.queue_url, bodies)
        sent = time.time()
        for iid in fresh:
            self.sent_at[iid] = sent
            self.warned.append((sent, iid))

    @property
    def cluster_size(self) -> int:
        """Container instances of ``soak`` not yet sent a ``terminated`` event."""
        return INITIAL_SIZE + len(self.registered) + len(self.warned)

    def _warning(self, instance_id: str) -> str:
        body = json.dumps(testbed.spot_warning(instance_id))
        self.recent.append(body)
        return body

    def _register(self, now: float) -> bool:
        """Register one more instance; True if one registered REGISTER_LEAD ago is ready."""
        if not self.pool:
            self.pool.extend(testbed.launch_instances(self.aws, LAUNCH_BATCH, AZ))
        iid = self.pool.pop()
        testbed.register_instances(self.aws, CLUSTER, [iid], AZ)
        self.registered.append((time.time(), iid))
        self.registrations += 1
        return self.registered[0][0] <= now - REGISTER_LEAD


# -- figures ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    if len(points) < 2:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def memory_figures(samples: Sequence[dict[str, Any]], warmup: float) -> dict[str, Any]:
    steady = [(s["t"], s["rss_mib"]) for s in samples if s["t"] >= warmup] or [
        (s["t"], s["rss_mib"]) for s in samples
    ]
    quarter = max(1, len(steady) // 4)
    first = sum(v for _, v in steady[:quarter]) / quarter
    last = sum(v for _, v in steady[-quarter:]) / quarter
    half = len(steady) // 2
    growth = (last - first) / first * 100
    early = slope_per_minute(steady[: max(half, 2)])
    late = slope_per_minute(steady[half:])
    flattening = late is None or late <= max(FLAT_SLOPE, (early or 0.0) / 2)
    values = [s["rss_mib"] for s in samples]
    return {
        "rss_mib": {
            "start": values[0],
            "end": values[-1],
            "max": max(values),
            "first_quarter_mean": round(first, 2),
            "last_quarter_mean": round(last, 2),
        },
        "rss_growth_pct": round(growth, 2),
        "rss_slope_mib_per_min": {"first_half": _round(early), "second_half": _round(late)},
        "steady_samples": len(steady),
        "memory_flat": growth < FLAT_GROWTH_PCT and flattening,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# -- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with testbed.local_aws() as aws:
        testbed.create_cluster(aws, CLUSTER, size=INITIAL_SIZE, az=AZ)
        other = [n.instance_id for n in testbed.create_cluster(aws, OTHER, size=20, az=AZ)]
        queues = testbed.create_queues(aws, "soak-events", max_receive=2, visibility=5)
        env = {
            "SCALER_CLUSTER": CLUSTER,
            "SCALER_DEDUP_TTL": str(args.dedup_ttl),
            "SCALER_INSTANCE_CACHE_TTL": str(args.cache_ttl),
            "SCALER_VISIBILITY_TIMEOUT": "10",
            "SCALER_RETRY_DELAY": "1",
        }
        feed = Feed(aws, queues.url, other, rng)
        feed.pool.extend(testbed.launch_instances(aws, LAUNCH_BATCH, AZ))
        with scaler_process(aws, queues.url, **env) as proc:
            tail = LogTail(proc.pid)
            samples: list[dict[str, Any]] = []
            started = time.monotonic()
            next_sample = started + args.sample_every
            window_start = time.time()
            tick = 0
            while (now := time.monotonic()) < started + args.seconds:
                feed.tick(args.rate)
                tick += 1
                if now >= next_sample:
                    samples.append(_sample(proc, tail, feed, now - started, window_start))
                    window_start = time.time()
                    next_sample += args.sample_every
                time.sleep(max(0.0, started + tick - time.monotonic()))
            fed_for = time.monotonic() - started
            _settle(aws, queues.url, tail, feed, limit=args.settle)
            settled = _sample(proc, tail, feed, time.monotonic() - started, window_start)
            final = scrape(proc.base_url)
            tail.close()
            stop_seconds, _ = _terminate(proc)
            exit_code = proc.returncode
        depth = testbed.queue_depth(aws, queues.url)
        dlq_depth = testbed.queue_depth(aws, queues.dlq_url)
    latencies = [at - feed.sent_at[i] for i, at in tail.drained_at.items() if i in feed.sent_at]
    calls = by_label(final, "scaler_aws_calls_total", "operation")
    return {
        "seconds": args.seconds,
        "rate": args.rate,
        "settings": {"dedup_ttl": args.dedup_ttl, "instance_cache_ttl": args.cache_ttl},
        "python": platform.python_version(),
        "moto": version("moto"),
        "sent": dict(sorted(feed.sent.items())),
        "sent_rate": round(sum(feed.sent.values()) / fed_for, 2),
        "outcomes": by_label(final, "scaler_events_total", "outcome"),
        "registered_instances": feed.registrations,
        "fresh_warnings": len(feed.sent_at),
        "drained": len(tail.drained_at),
        "undrained_fresh": len(feed.sent_at.keys() - tail.drained_at.keys()),
        "histogram_drains": int(total(final, "scaler_interruption_to_drain_seconds_count")),
        "deregistered": int(total(final, "scaler_deregistered_instances_total")),
        "latency_s": {
            "p50": _round(percentile(latencies, 50)),
            "p99": _round(percentile(latencies, 99)),
            "max": _round(max(latencies, default=None)),
        },
        "directory_refreshes": calls.get("ListContainerInstances", 0),
        "aws_calls": calls,
        "queue_depth_end": depth,
        "dlq_depth_end": dlq_depth,
        "exit_code": exit_code,
        "stop_seconds": round(stop_seconds, 2),
        **memory_figures(samples, args.warmup if args.warmup is not None else args.seconds / 10),
        "settled": settled,
        "samples": samples,
    }


def _sample(proc: Any, tail: LogTail, feed: Feed, t: float, window_start: float) -> dict[str, Any]:
    tail.poll()
    metrics = scrape(proc.base_url)
    window = [
        at - feed.sent_at[iid]
        for iid, at in tail.drained_at.items()
        if at > window_start and iid in feed.sent_at
    ]
    return {
        "t": round(t, 1),
        "rss_mib": round(rss_mib(proc.pid), 2),
        "handled": int(total(metrics, "scaler_events_total", outcome="handled")),
        "events": int(total(metrics, "scaler_events_total")),
        "cluster_size": feed.cluster_size,
        "drains_in_window": len(window),
        "p50_ms": _ms(percentile(window, 50)),
        "p99_ms": _ms(percentile(window, 99)),
    }


def _settle(aws: testbed.LocalAws, url: str, tail: LogTail, feed: Feed, limit: float) -> None:
    """After the feed stops: wait until every fresh warning is drained and the queue is empty
    (malformed bodies aside, which leave on their own schedule), or ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        tail.poll()
        if feed.sent_at.keys() <= tail.drained_at.keys() and testbed.queue_depth(aws, url) <= 3:
            return
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=240.0, help="feed duration (240)")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="events per second (10), terminations aside"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--dedup-ttl", type=float, default=30.0, help="SCALER_DEDUP_TTL (30)")
    parser.add_argument("--cache-ttl", type=float, default=10.0, help="instance cache TTL (10)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (10%% of the run)")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait at the end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-only", action="store_true", help="print nothing but the JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.sample_every <= 0:
        parser.error("--seconds, --rate and --sample-every must be positive")
    if not args.json_only:
        print(f"soak: {args.seconds:g} s at {args.rate:g} events/s", file=sys.stderr)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
