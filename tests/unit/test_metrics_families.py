"""The metrics operators of many clusters expect: runtime, info, series at zero, lifetimes."""

from __future__ import annotations

import json

from scaler.events import SIGNAL_KINDS
from scaler.lifetimes import Lifetimes
from scaler.metrics import EVENT_OUTCOMES, Metrics
from scaler.model import ContainerInstance
from scaler.plan.capacity import NodeView


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_process_platform_and_gc_collectors_are_in_the_registry() -> None:
    text = Metrics().render().decode()
    for family in ("process_cpu_seconds_total", "python_info", "python_gc_objects_collected"):
        assert family in text, family


def test_info_names_cluster_queue_version_and_dry_run() -> None:
    metrics = Metrics()
    metrics.describe("prod", "events", dry_run=True)
    value = _sample(
        metrics, "scaler_info", cluster="prod", queue="events", version=_version(), dry_run="true"
    )
    assert value == 1


def _version() -> str:
    from scaler import __version__

    return __version__


def test_counters_operators_rate_on_exist_at_zero() -> None:
    metrics = Metrics()
    for kind in SIGNAL_KINDS:
        for outcome in EVENT_OUTCOMES:
            assert _sample(metrics, "scaler_events_total", kind=kind, outcome=outcome) == 0
    assert _sample(metrics, "scaler_events_total", kind="unknown", outcome="malformed") == 0
    for outcome in ("ok", "dry_run", "failed"):
        labels = {"action": "drain", "reason": "spot_interruption", "outcome": outcome}
        assert _sample(metrics, "scaler_actions_total", **labels) == 0
    assert _sample(metrics, "scaler_interruptions_total", **_unknown()) is None  # by config


def _unknown() -> dict[str, str]:
    return {"pool": "unknown", "availability_zone": "unknown", "instance_type": "unknown"}


def test_interruptions_are_counted_by_pool_az_and_type() -> None:
    metrics = Metrics()
    ci = ContainerInstance(
        "arn:ci/1", "i-1", "ACTIVE", availability_zone="us-east-1a", instance_type="m6i.large"
    )
    metrics.interrupted(ci, "spot-a")
    metrics.interrupted(ContainerInstance("arn:ci/2", "i-2", "ACTIVE"), None)
    labels = {"pool": "spot-a", "availability_zone": "us-east-1a", "instance_type": "m6i.large"}
    assert _sample(metrics, "scaler_interruptions_total", **labels) == 1
    assert _sample(metrics, "scaler_interruptions_total", **_unknown()) == 1


def test_queue_gauges() -> None:
    metrics = Metrics()
    metrics.queue(visible=7, in_flight=2, oldest_age=42.0, dead_letters=3)
    assert _sample(metrics, "scaler_queue_messages", queue="events", state="visible") == 7
    assert _sample(metrics, "scaler_queue_messages", queue="events", state="in_flight") == 2
    assert _sample(metrics, "scaler_queue_messages", queue="dead_letter", state="visible") == 3
    assert _sample(metrics, "scaler_queue_oldest_message_age_seconds") == 42.0


def _node(iid: str, status: str) -> NodeView:
    return NodeView(iid, "spot-a", "us-east-1a", "spot", status, 2048, 4096, 2048, 4096)


def _ci(iid: str, status: str, tasks: int) -> ContainerInstance:
    return ContainerInstance(f"arn:ci/{iid}", iid, status, running_tasks=tasks)


def test_launch_to_registration_is_observed_once_per_instance() -> None:
    metrics = Metrics()
    lives = Lifetimes(metrics)
    lives.observe([_node("i-1", "launching")], [], 100.0)
    lives.observe([_node("i-1", "launching")], [], 130.0)
    lives.observe([_node("i-1", "ACTIVE")], [_ci("i-1", "ACTIVE", 0)], 160.0)
    lives.observe([_node("i-1", "ACTIVE")], [_ci("i-1", "ACTIVE", 0)], 190.0)
    assert _sample(metrics, "scaler_instance_registration_seconds_count") == 1
    assert _sample(metrics, "scaler_instance_registration_seconds_sum") == 60.0


def test_an_instance_registered_before_the_scaler_started_is_not_observed() -> None:
    metrics = Metrics()
    Lifetimes(metrics).observe([_node("i-1", "ACTIVE")], [_ci("i-1", "ACTIVE", 3)], 100.0)
    assert _sample(metrics, "scaler_instance_registration_seconds_count") == 0


def test_drain_to_empty_to_terminated() -> None:
    metrics = Metrics()
    lives = Lifetimes(metrics)
    lives.observe([], [_ci("i-1", "ACTIVE", 3)], 0.0)
    lives.observe([], [_ci("i-1", "DRAINING", 3)], 10.0)
    lives.observe([], [_ci("i-1", "DRAINING", 1)], 40.0)
    lives.observe([], [_ci("i-1", "DRAINING", 0)], 70.0)
    lives.observe([], [_ci("i-1", "DRAINING", 0)], 80.0)
    lives.observe([], [], 100.0)
    lives.observe([], [], 130.0)
    empty = "scaler_instance_drain_seconds_sum"
    assert _sample(metrics, empty, stage="drain_to_empty") == 60.0
    assert _sample(metrics, empty, stage="empty_to_terminated") == 30.0
    assert _sample(metrics, "scaler_instance_drain_seconds_count", stage="drain_to_empty") == 1


def test_lifetimes_forget_instances_that_are_gone() -> None:
    lives = Lifetimes(Metrics())
    lives.observe([_node("i-1", "launching")], [_ci("i-2", "DRAINING", 1)], 0.0)
    lives.observe([], [], 10.0)
    assert lives.tracked() == 0


def test_the_dead_letter_queue_url_comes_from_the_redrive_policy() -> None:
    from scaler.aws.queue_depth import dead_letter_url

    policy = json.dumps(
        {
            "deadLetterTargetArn": "arn:aws:sqs:eu-west-1:111122223333:events-dlq",
            "maxReceiveCount": 5,
        }
    )
    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/events"
    assert (
        dead_letter_url(url, policy)
        == "https://sqs.eu-west-1.amazonaws.com/111122223333/events-dlq"
    )
    assert dead_letter_url(url, None) is None
    assert dead_letter_url(url, "{not json") is None
    assert dead_letter_url(url, json.dumps({"deadLetterTargetArn": "nonsense"})) is None
