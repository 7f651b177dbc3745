"""Prometheus metrics, all named ``scaler_*``.

One :class:`Metrics` object owns one registry, so each process (and each test) has its own and
``/metrics`` shows exactly what this scaler did. Every counter says *what happened and why*
through its labels: an event's ``kind`` and ``outcome``, an AWS call's ``operation`` and
``outcome``, a drain's ``reason``.

Outcomes of an event (``scaler_events_total{outcome}``):

- ``handled``: its work succeeded and the message was deleted;
- ``duplicate``: an event with the same id was already handled; deleted;
- ``other_cluster``: it concerns instances that are not in this cluster; deleted;
- ``ignored``: a type the scaler does not act on; deleted;
- ``malformed``: unreadable; left on the queue for its dead-letter queue;
- ``failed``: its work failed; left on the queue to be received again;
- ``deferred``: work scheduled for later; the message comes back when it is due;
- ``released``: handed back to the queue at shutdown before its work finished.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from scaler import __version__
from scaler.events import SIGNAL_KINDS
from scaler.model import ContainerInstance
from scaler.plan.undrain import REVERSIBLE

if TYPE_CHECKING:
    from scaler.plan.advice import AdvicePlan

# `*_created` series double the exposition and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENT_OUTCOMES = (
    "handled",
    "duplicate",
    "other_cluster",
    "ignored",
    "malformed",
    "failed",
    "deferred",
    "released",
)

# the outcomes of a drain, counted in scaler_actions_total{action="drain"}
DRAIN_OUTCOMES = ("ok", "already", "dry_run", "failed", "gone")
UNKNOWN = "unknown"  # a pool, AZ or instance type not known
# the events queue and its dead-letter queue, as ``scaler_queue_messages{queue}``
QUEUES = ("events", "dead_letter")
# an AWS call takes milliseconds, a throttled and retried one seconds
AWS_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# an instance takes minutes to boot and register, or to lose its tasks and end
LIFETIME_BUCKETS = (15, 30, 60, 90, 120, 180, 300, 600, 900, 1800, 3600)
# how long a message waited in the queue before the scaler received it
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 300, 600)


class Metrics:
    """The scaler's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge(
            "scaler_build_info", "Version of the running scaler.", ["version"], registry=r
        ).labels(__version__).set(1)
        self.events = Counter(
            "scaler_events",
            "Events taken from the queue, by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.messages_received = Counter(
            "scaler_messages_received", "SQS messages received (each receive counts).", registry=r
        )
        self.inflight = Gauge(
            "scaler_inflight_messages",
            "Messages received and not yet deleted or released.",
            registry=r,
        )
        self.event_seconds = Histogram(
            "scaler_event_handling_seconds",
            "Time from receiving a message to its outcome.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.aws_calls = Counter(
            "scaler_aws_calls",
            "AWS API calls made, by service, operation and outcome "
            "(`ok`, an AWS error code, or `network_error`).",
            ["service", "operation", "outcome"],
            registry=r,
        )
        self.loop_tick = Gauge(
            "scaler_intake_last_tick_timestamp_seconds",
            "Unix time the intake loop last made progress.",
            registry=r,
        )
        self.visibility_extensions = Counter(
            "scaler_visibility_extensions",
            "Messages whose visibility timeout was extended.",
            registry=r,
        )
        self.drain_latency = Histogram(
            "scaler_interruption_to_drain_seconds",
            "From an event's `time` to the success of the drain call it caused.",
            ["reason"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.surge_holds = Histogram(
            "scaler_surge_hold_seconds",
            "How long a warned (or recommended) instance waited for its services' surge before "
            "its drain, by outcome: `ready` (the extra tasks were healthy), `deadline` (the "
            "notice left only the stop time).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.drained_instances = Counter(
            "scaler_drained_instances",
            "Container instances set to DRAINING, by reason.",
            ["reason"],
            registry=r,
        )
        self.reactivated = Counter(
            "scaler_reactivated_instances",
            "Instances the scaler drained on a warning that did not come true and set ACTIVE "
            "again, by reason (`rebalance_recommendation`, `scheduled_reboot`).",
            ["reason"],
            registry=r,
        )
        for reason in REVERSIBLE:
            self.reactivated.labels(reason)
        self.stale_draining = Gauge(
            "scaler_stale_draining_instances",
            "Instances DRAINING past SCALER_DRAIN_TIMEOUT with no live reason (no spot notice, "
            "retirement or reactivation to come), no longer counted as doomed; at the last plan.",
            registry=r,
        )
        self.drain_batch_size = Histogram(
            "scaler_drain_batch_size",
            "Container instances per UpdateContainerInstancesState call.",
            buckets=(1, 2, 3, 5, 7, 10),
            registry=r,
        )
        self.lifecycle_actions = Counter(
            "scaler_lifecycle_actions",
            "Auto Scaling lifecycle actions completed, by result.",
            ["result"],
            registry=r,
        )
        self.lifecycle_heartbeats = Counter(
            "scaler_lifecycle_heartbeats", "Lifecycle heartbeats recorded.", registry=r
        )
        self.deregistered_instances = Counter(
            "scaler_deregistered_instances",
            "Container instances deregistered because their EC2 instance was gone.",
            registry=r,
        )
        self.standalone_restarts = Counter(
            "scaler_standalone_task_restarts",
            "Standalone tasks re-run off a draining instance, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.actions = Counter(
            "scaler_actions",
            "Actions taken on AWS resources, by action, reason and outcome "
            "(`ok`, `already`, `dry_run`, `failed`, `not_leader`).",
            ["action", "reason", "outcome"],
            registry=r,
        )
        self.throttle_retries = Counter(
            "scaler_throttle_retries",
            "Calls retried after AWS throttled them, by operation.",
            ["operation"],
            registry=r,
        )
        self.capacity = Gauge(
            "scaler_capacity",
            "Capacity in the cluster by type: healthy instances (spot, "
            "on-demand) and Fargate overflow tasks.",
            ["capacity_type"],
            registry=r,
        )
        self.fallback_active = Gauge(
            "scaler_fallback_active",
            "1 while on-demand fallback instances are running.",
            registry=r,
        )
        self.overflow_tasks = Gauge(
            "scaler_overflow_tasks",
            "Desired Fargate overflow tasks, by companion service.",
            ["service"],
            registry=r,
        )
        self.deficit = Gauge(
            "scaler_capacity_deficit",
            "Capacity missing at the last plan (before top-up), by resource: CPU units and MiB.",
            ["resource"],
            registry=r,
        )
        self.capacity_cycles = Counter(
            "scaler_capacity_cycles",
            "Capacity cycles, by read: `full` (read, planned, acted) or `quiet` (the cluster was "
            "settled and a probe found nothing changed: nothing read or planned).",
            ["read"],
            registry=r,
        )
        for read in ("full", "quiet"):
            self.capacity_cycles.labels(read)  # both series from the start, at 0
        self.capacity_changes = Counter(
            "scaler_capacity_changes",
            "Instances added to or removed from the scaler's pools, by change (`add`, `remove`) "
            "and reason (`interruption`, `demand`, `headroom`, `on_demand_base`, "
            "`return_to_spot`, `drift`, `consolidation`, `migration`, `surplus`).",
            ["change", "reason"],
            registry=r,
        )
        self.retiring = Gauge(
            "scaler_retiring_instances",
            "Instances the scaler is taking out by its own choice (tagged scaler:retiring), "
            "by reason (`drift`, `consolidation`, `migration`, `return_to_spot`, `surplus`).",
            ["reason"],
            registry=r,
        )
        self.reverts = Counter(
            "scaler_reverts", "On-demand fallback instances given back for spot.", registry=r
        )
        self.task_moves = Counter(
            "scaler_task_moves",
            "Task moves off hot instances, by outcome (`stopped`, `surged` (replacement first), "
            "`dry_run`, `failed`; then `as_predicted`, `elsewhere` or `not_replaced`).",
            ["outcome"],
            registry=r,
        )
        self.leader = Gauge(
            "scaler_leader",
            "1 while this replica holds the leader lease (runs top-up and rebalancing); always 1 "
            "without SCALER_LEASE_TABLE.",
            registry=r,
        )
        self.lease_changes = Counter(
            "scaler_lease_changes",
            "Leader lease changes of this replica, by event (`acquired`, `lost`, `released`).",
            ["event"],
            registry=r,
        )
        self.hot_instances = Gauge(
            "scaler_hot_instances",
            "Container instances above the hot threshold at the last plan.",
            registry=r,
        )
        self.imbalance = Gauge(
            "scaler_cluster_imbalance",
            "Highest instance CPU share minus the mean, at the last plan.",
            registry=r,
        )
        self.drain_risk_services = Gauge(
            "scaler_drain_risk_services",
            "Services whose tasks cannot be replaced within a spot notice, by cause.",
            ["cause"],
            registry=r,
        )
        self.reservation_advised = Gauge(
            "scaler_reservation_advice",
            "Advised reservation per task of a service whose measured use is far from what it "
            "reserves, by service and resource (`cpu` in CPU units, `memory` in MiB), at the "
            "last advice (SCALER_ADVICE). Advice only: the scaler changes no task definition.",
            ["service", "resource"],
            registry=r,
        )
        self.reservation_current = Gauge(
            "scaler_reservation_current",
            "Current reservation per task of each service in scaler_reservation_advice, same "
            "labels and units.",
            ["service", "resource"],
            registry=r,
        )

        self._operators(r)
        # the interpreter's own: CPU, memory, open files, GC (prometheus_client's defaults)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._zeros()

    def _operators(self, r: CollectorRegistry) -> None:
        """Queue, AWS latency, interruption and instance-lifetime metrics; the info metric."""
        self.info = Gauge(
            "scaler_info",
            "1, labelled with what this scaler serves: cluster, queue name, version, dry_run.",
            ["cluster", "queue", "version", "dry_run"],
            registry=r,
        )
        self.queue_messages = Gauge(
            "scaler_queue_messages",
            "Messages in the events queue (`events`) and its dead-letter queue (`dead_letter`), "
            "by state (`visible`, `in_flight`), read every readiness check.",
            ["queue", "state"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "scaler_queue_oldest_message_age_seconds",
            "Age of the oldest message waiting in the events queue: 0 when none is visible, else "
            "the age of the oldest message of the scaler's last receive (a lower bound).",
            registry=r,
        )
        self.queue_wait = Histogram(
            "scaler_queue_wait_seconds",
            "Time a message waited in the queue before the scaler first received it.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.aws_call_seconds = Histogram(
            "scaler_aws_call_seconds",
            "Duration of AWS API calls, botocore's retries included, by service and operation.",
            ["service", "operation"],
            buckets=AWS_CALL_BUCKETS,
            registry=r,
        )
        self.interruptions = Counter(
            "scaler_interruptions",
            "Spot interruption warnings handled for this cluster's instances, by pool "
            "(`unknown` if the capacity side does not know it), availability zone and type.",
            ["pool", "availability_zone", "instance_type"],
            registry=r,
        )
        self.registration_seconds = Histogram(
            "scaler_instance_registration_seconds",
            "From an instance first seen launching in a pool to its registration in ECS.",
            buckets=LIFETIME_BUCKETS,
            registry=r,
        )
        self.drain_seconds = Histogram(
            "scaler_instance_drain_seconds",
            "Instance retirement by stage: `drain_to_empty` (first seen DRAINING to no tasks "
            "left), `empty_to_terminated` (no tasks to gone from the cluster).",
            ["stage"],
            buckets=LIFETIME_BUCKETS,
            registry=r,
        )

    def _zeros(self) -> None:
        """Series that exist at 0 from the start, so that ``rate()`` sees their first rise."""
        for kind in (*SIGNAL_KINDS, UNKNOWN):
            for outcome in EVENT_OUTCOMES:
                self.events.labels(kind, outcome)
        for outcome in DRAIN_OUTCOMES:
            self.actions.labels("drain", "spot_interruption", outcome)
        self.drained_instances.labels("spot_interruption")
        for stage in ("drain_to_empty", "empty_to_terminated"):
            self.drain_seconds.labels(stage)

    def describe(self, cluster: str, queue: str, *, dry_run: bool) -> None:
        """Set ``scaler_info``: what this scaler serves."""
        self.info.clear()
        self.info.labels(cluster, queue, __version__, str(dry_run).lower()).set(1)

    def queue(
        self, *, visible: int, in_flight: int, oldest_age: float, dead_letters: int | None
    ) -> None:
        """The queue's depth as a readiness check read it (``dead_letters`` None: no DLQ)."""
        self.queue_messages.labels("events", "visible").set(visible)
        self.queue_messages.labels("events", "in_flight").set(in_flight)
        if dead_letters is not None:
            self.queue_messages.labels("dead_letter", "visible").set(dead_letters)
        self.oldest_age.set(oldest_age)

    def interrupted(self, instance: ContainerInstance, pool: str | None) -> None:
        """Count a spot interruption warning handled for ``instance``."""
        self.interruptions.labels(
            pool or UNKNOWN,
            instance.availability_zone or UNKNOWN,
            instance.instance_type or UNKNOWN,
        ).inc()

    def reservation_advice(self, plan: AdvicePlan) -> None:
        """Set the advice gauges to ``plan``'s advice alone (advice no longer given goes)."""
        self.reservation_advised.clear()
        self.reservation_current.clear()
        for advice in plan.advice:
            self.reservation_advised.labels(advice.service, advice.resource).set(advice.advised)
            self.reservation_current.labels(advice.service, advice.resource).set(advice.reserved)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
