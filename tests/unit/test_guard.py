"""Guard rails: which services cannot be drained within a spot notice, and how that is reported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler import guard
from scaler.clock import ManualClock
from scaler.guard import (
    RISK_CAUSES,
    DrainRisk,
    GuardRails,
    ServiceView,
    container_health_check_seconds,
    drain_risks,
    scan_services,
    service_view,
)
from scaler.metrics import Metrics

CLUSTER = "prod"


def view(name: str = "web", **overrides: Any) -> ServiceView:
    values: dict[str, Any] = dict(
        name=name,
        arn=f"arn:aws:ecs:us-east-1:123456789012:service/{CLUSTER}/{name}",
        scheduling_strategy="REPLICA",
        desired_count=4,
        minimum_healthy_percent=50,
        maximum_percent=200,
    )
    values.update(overrides)
    return ServiceView(**values)


# -- drain_risks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "causes"),
    [
        ({}, []),
        ({"minimum_healthy_percent": 50, "maximum_percent": 100}, []),
        ({"minimum_healthy_percent": 0, "maximum_percent": 100}, []),
        ({"minimum_healthy_percent": 99, "maximum_percent": 100}, []),
        ({"minimum_healthy_percent": 100, "maximum_percent": 200}, ["min_healthy_100"]),
        ({"minimum_healthy_percent": 150, "maximum_percent": 200}, ["min_healthy_100"]),
        ({"minimum_healthy_percent": 100, "maximum_percent": 101}, ["min_healthy_100"]),
        ({"minimum_healthy_percent": 100, "maximum_percent": 100}, ["no_surge_room"]),
        ({"minimum_healthy_percent": 100, "maximum_percent": 50}, ["no_surge_room"]),
        ({"health_check_grace_period_seconds": 300}, ["slow_health_check"]),
        ({"health_check_grace_period_seconds": 120}, []),
        ({"container_health_check_seconds": 230}, ["slow_health_check"]),
        ({"container_health_check_seconds": 120}, []),
        ({"container_health_check_seconds": None}, []),
        (
            {"minimum_healthy_percent": 100, "container_health_check_seconds": 230},
            ["min_healthy_100", "slow_health_check"],
        ),
        (
            {
                "minimum_healthy_percent": 100,
                "maximum_percent": 100,
                "health_check_grace_period_seconds": 600,
            },
            ["no_surge_room", "slow_health_check"],
        ),
        # DAEMON tasks are stopped last and not replaced elsewhere: never at risk.
        (
            {
                "scheduling_strategy": "DAEMON",
                "minimum_healthy_percent": 100,
                "maximum_percent": 100,
                "health_check_grace_period_seconds": 600,
            },
            [],
        ),
        # Nothing to move.
        ({"desired_count": 0, "minimum_healthy_percent": 100, "maximum_percent": 100}, []),
        ({"desired_count": 0, "container_health_check_seconds": 600}, []),
        # Load balancer and deployment state do not change the verdict by themselves.
        ({"has_load_balancer": True, "deployment_in_progress": True}, []),
    ],
)
def test_causes(overrides: dict[str, Any], causes: list[str]) -> None:
    risks = drain_risks([view(**overrides)])
    assert [r.cause for r in risks] == causes
    assert all(r.service == "web" for r in risks)
    assert set(causes) <= set(RISK_CAUSES)


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        (
            {"minimum_healthy_percent": 100},
            "minimumHealthyPercent=100: old tasks stop only after replacements are healthy",
        ),
        (
            {"minimum_healthy_percent": 100, "maximum_percent": 100},
            "minimumHealthyPercent=100 and maximumPercent=100: ECS can neither stop an old task"
            " first nor start a replacement first, so draining never finishes",
        ),
        (
            {"health_check_grace_period_seconds": 300},
            "healthCheckGracePeriodSeconds=300 is longer than the 120 s notice",
        ),
        (
            {"container_health_check_seconds": 230},
            "container health checks need up to 230 s to report HEALTHY, longer than the 120 s"
            " notice",
        ),
        (
            {"health_check_grace_period_seconds": 300, "container_health_check_seconds": 230},
            "healthCheckGracePeriodSeconds=300 is longer than the 120 s notice; container health"
            " checks need up to 230 s to report HEALTHY, longer than the 120 s notice",
        ),
    ],
)
def test_details_carry_the_numbers(overrides: dict[str, Any], detail: str) -> None:
    [risk] = drain_risks([view(**overrides)])
    assert risk.detail == detail


def test_the_notice_length_is_a_parameter() -> None:
    slow = view(container_health_check_seconds=90)
    assert drain_risks([slow]) == []
    [risk] = drain_risks([slow], notice_seconds=60)
    assert risk.cause == "slow_health_check"
    assert "longer than the 60 s notice" in risk.detail


def test_risks_follow_the_services_order_and_any_iterable_works() -> None:
    services = (
        view(name, minimum_healthy_percent=100, maximum_percent=m)
        for name, m in [("b", 200), ("ok", 0), ("a", 100)]
    )
    risks = drain_risks(services)
    assert [(r.service, r.cause) for r in risks] == [
        ("b", "min_healthy_100"),
        ("ok", "no_surge_room"),
        ("a", "no_surge_room"),
    ]


# -- reading ECS answers -----------------------------------------------------------------------


def container(check: dict[str, Any] | None = None, essential: bool | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "x"}
    if check is not None:
        c["healthCheck"] = {"command": ["CMD", "true"], **check}
    if essential is not None:
        c["essential"] = essential
    return c


@pytest.mark.parametrize(
    ("containers", "seconds"),
    [
        ([], None),
        ([container()], None),
        ([container({})], 30),
        ([container({"startPeriod": 200})], 230),
        ([container({"startPeriod": 20, "interval": 10, "retries": 10})], 30),
        ([container({"interval": 5}), container({"startPeriod": 60, "interval": 60})], 120),
        ([container({"startPeriod": 300}, essential=False), container({})], 30),
        ([container({"startPeriod": 300}, essential=False)], None),
        ([container({"startPeriod": 300}, essential=True)], 330),
    ],
)
def test_container_health_check_seconds(containers: list[dict[str, Any]], seconds: int) -> None:
    assert container_health_check_seconds({"containerDefinitions": containers}) == seconds


def raw_service(name: str, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "serviceName": name,
        "serviceArn": f"arn:aws:ecs:us-east-1:123456789012:service/{CLUSTER}/{name}",
        "status": "ACTIVE",
        "desiredCount": 2,
        "schedulingStrategy": "REPLICA",
        "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/plain:1",
        "loadBalancers": [],
        "deployments": [{"status": "PRIMARY", "rolloutState": "COMPLETED"}],
    }
    raw.update(fields)
    return raw


def test_a_service_without_deployment_configuration_gets_ecs_defaults() -> None:
    assert service_view(raw_service("web"), None) == view(
        desired_count=2, minimum_healthy_percent=100, maximum_percent=200
    )
    daemon = service_view(raw_service("agent", schedulingStrategy="DAEMON"), None)
    assert (daemon.minimum_healthy_percent, daemon.maximum_percent) == (0, 100)


def test_a_described_service_becomes_a_view() -> None:
    raw = raw_service(
        "web",
        deploymentConfiguration={
            "minimumHealthyPercent": 50,
            "maximumPercent": 150,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        },
        healthCheckGracePeriodSeconds=45,
        loadBalancers=[{"targetGroupArn": "arn:tg", "containerName": "c", "containerPort": 80}],
    )
    assert service_view(raw, 230) == view(
        desired_count=2,
        maximum_percent=150,
        health_check_grace_period_seconds=45,
        has_load_balancer=True,
        container_health_check_seconds=230,
    )


@pytest.mark.parametrize(
    ("deployments", "in_progress"),
    [
        ([], False),
        ([{"status": "PRIMARY", "rolloutState": "COMPLETED"}], False),
        ([{"status": "PRIMARY"}], False),
        ([{"status": "PRIMARY", "rolloutState": "IN_PROGRESS"}], True),
        ([{"status": "PRIMARY", "rolloutState": "FAILED"}], False),
        (
            [
                {"status": "PRIMARY", "rolloutState": "COMPLETED"},
                {"status": "ACTIVE", "rolloutState": "COMPLETED"},
            ],
            True,
        ),
    ],
)
def test_deployment_in_progress(deployments: list[dict[str, Any]], in_progress: bool) -> None:
    raw = raw_service("web", deployments=deployments)
    assert service_view(raw, None).deployment_in_progress is in_progress


# -- scan_services, against a fake client ------------------------------------------------------


class FakePaginator:
    def __init__(self, ecs: FakeEcs) -> None:
        self._ecs = ecs

    async def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        self._ecs.calls.append(("ListServices", kwargs))
        arns = [s["serviceArn"] for s in self._ecs.services]
        for i in range(0, max(len(arns), 1), self._ecs.page_size):
            yield {"serviceArns": arns[i : i + self._ecs.page_size]}


class FakeEcs:
    """Just enough of an aiobotocore ECS client for scan_services, recording every call.

    ``task_definitions`` maps an ARN to its description, or to an exception to raise.
    """

    def __init__(
        self,
        services: list[dict[str, Any]],
        task_definitions: dict[str, Any] | None = None,
        page_size: int = 7,
    ) -> None:
        self.services = services
        self.task_definitions = task_definitions or {}
        self.page_size = page_size
        self.calls: list[tuple[str, Any]] = []

    def get_paginator(self, name: str) -> FakePaginator:
        assert name == "list_services"
        return FakePaginator(self)

    async def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        assert cluster == CLUSTER and len(services) <= 10
        self.calls.append(("DescribeServices", list(services)))
        by_arn = {s["serviceArn"]: s for s in self.services}
        return {"services": [by_arn[a] for a in services], "failures": []}

    async def describe_task_definition(self, taskDefinition: str) -> dict[str, Any]:
        self.calls.append(("DescribeTaskDefinition", taskDefinition))
        if taskDefinition not in self.task_definitions:
            raise ClientError(
                {"Error": {"Code": "ClientException", "Message": "Unable to describe"}},
                "DescribeTaskDefinition",
            )
        found = self.task_definitions[taskDefinition]
        if isinstance(found, BaseException):
            raise found
        return {"taskDefinition": found}

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)


SLOW_TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/slow:3"
PLAIN_TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/plain:1"
TASK_DEFINITIONS = {
    SLOW_TD: {"containerDefinitions": [container({"startPeriod": 200})]},
    PLAIN_TD: {"containerDefinitions": [container()]},
}


async def test_scan_pages_chunks_and_describes_each_task_definition_once() -> None:
    services = [
        raw_service(f"s{i:02}", taskDefinition=SLOW_TD if i % 2 else PLAIN_TD) for i in range(23)
    ]
    ecs = FakeEcs(services, TASK_DEFINITIONS)
    views = await scan_services(ecs, CLUSTER)
    assert [v.name for v in views] == [f"s{i:02}" for i in range(23)]
    assert [v.container_health_check_seconds for v in views[:3]] == [None, 230, None]
    list_call = ecs.calls[0]
    assert list_call == (
        "ListServices",
        {"cluster": CLUSTER, "PaginationConfig": {"PageSize": 100}},
    )
    assert [len(arns) for op, arns in ecs.calls if op == "DescribeServices"] == [10, 10, 3]
    assert sorted(td for op, td in ecs.calls if op == "DescribeTaskDefinition") == [
        PLAIN_TD,
        SLOW_TD,
    ]


async def test_scan_of_an_empty_cluster_describes_nothing() -> None:
    ecs = FakeEcs([])
    assert await scan_services(ecs, CLUSTER) == []
    assert ecs.count("DescribeServices") == 0 and ecs.count("DescribeTaskDefinition") == 0


async def test_scan_skips_services_that_are_not_active_and_tolerates_missing_fields() -> None:
    services = [
        raw_service("deleting", status="DRAINING"),
        raw_service("external", taskDefinition=None),
        raw_service("web"),
    ]
    views = await scan_services(FakeEcs(services, TASK_DEFINITIONS), CLUSTER)
    assert [(v.name, v.container_health_check_seconds) for v in views] == [
        ("external", None),
        ("web", None),
    ]


async def test_an_unreadable_task_definition_counts_as_no_health_check() -> None:
    gone = "arn:aws:ecs:us-east-1:123456789012:task-definition/gone:1"
    ecs = FakeEcs([raw_service("web", taskDefinition=gone)], TASK_DEFINITIONS)
    [web] = await scan_services(ecs, CLUSTER)
    assert web.container_health_check_seconds is None


async def test_other_task_definition_failures_fail_the_scan() -> None:
    ecs = FakeEcs([raw_service("web")], {PLAIN_TD: ConnectionError("down")})
    with pytest.raises(ConnectionError):
        await scan_services(ecs, CLUSTER)


# -- GuardRails --------------------------------------------------------------------------------


def gauge_values(metrics: Metrics) -> dict[str, float | None]:
    sample = metrics.registry.get_sample_value
    return {c: sample("scaler_drain_risk_services", {"cause": c}) for c in RISK_CAUSES}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [
        (r.service, r.cause, r.detail)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "scaler.guard" and r.levelno == logging.WARNING
    ]


def rails(ecs: FakeEcs, metrics: Metrics, interval: float = 300.0) -> GuardRails:
    return GuardRails(ecs, CLUSTER, metrics.drain_risk_services, ManualClock(), interval)


STRICT = {"deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 100}}
RELAXED = {"deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 200}}


async def test_the_gauge_has_every_cause_zero_included(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.guard")
    services = [
        raw_service("a", **STRICT),
        raw_service("b", **STRICT),
        raw_service("c", **RELAXED, taskDefinition=SLOW_TD),
        raw_service("d", **RELAXED),
    ]
    metrics = Metrics()
    risks = await rails(FakeEcs(services, TASK_DEFINITIONS), metrics).check()
    assert [(r.service, r.cause) for r in risks] == [
        ("a", "no_surge_room"),
        ("b", "no_surge_room"),
        ("c", "slow_health_check"),
    ]
    assert gauge_values(metrics) == {
        "no_surge_room": 2.0,
        "min_healthy_100": 0.0,
        "slow_health_check": 1.0,
    }


async def test_an_empty_cluster_sets_every_cause_to_zero() -> None:
    metrics = Metrics()
    assert await rails(FakeEcs([]), metrics).check() == []
    assert gauge_values(metrics) == dict.fromkeys(RISK_CAUSES, 0.0)


async def test_warnings_only_when_the_risks_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.guard")
    ecs = FakeEcs([raw_service("a", **STRICT), raw_service("b", **RELAXED)], TASK_DEFINITIONS)
    metrics = Metrics()
    guard_rails = rails(ecs, metrics)
    await guard_rails.check()
    first = warnings_of(caplog)
    assert first == [
        ("a", "no_surge_room", drain_risks([service_view(ecs.services[0], None)])[0].detail)
    ]

    caplog.clear()
    await guard_rails.check()
    assert warnings_of(caplog) == []  # same risks: quiet

    caplog.clear()
    ecs.services[1] = raw_service("b", deploymentConfiguration={"minimumHealthyPercent": 100})
    await guard_rails.check()
    assert [(s, c) for s, c, _ in warnings_of(caplog)] == [
        ("a", "no_surge_room"),
        ("b", "min_healthy_100"),
    ]
    assert gauge_values(metrics)["min_healthy_100"] == 1.0

    caplog.clear()
    ecs.services = [raw_service("a", **RELAXED), raw_service("b", **RELAXED)]
    await guard_rails.check()
    assert warnings_of(caplog) == []
    assert [r.message for r in caplog.records] == ["no service is at drain risk any more"]
    assert gauge_values(metrics) == dict.fromkeys(RISK_CAUSES, 0.0)


async def test_a_changed_detail_is_a_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.guard")
    ecs = FakeEcs([raw_service("a", **RELAXED, healthCheckGracePeriodSeconds=300)])
    guard_rails = rails(ecs, Metrics())
    await guard_rails.check()
    ecs.services = [raw_service("a", **RELAXED, healthCheckGracePeriodSeconds=600)]
    await guard_rails.check()
    await guard_rails.check()
    details = [d for _, _, d in warnings_of(caplog)]
    assert len(details) == 2
    assert "=300 " in details[0] and "=600 " in details[1]


async def test_a_change_repeats_every_current_risk(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.guard")
    ecs = FakeEcs([raw_service("a", **STRICT)])
    guard_rails = rails(ecs, Metrics())
    await guard_rails.check()
    ecs.services.append(raw_service("b", **STRICT))
    await guard_rails.check()
    assert [s for s, _, _ in warnings_of(caplog)] == ["a", "a", "b"]


async def test_a_clean_first_check_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="scaler.guard")
    await rails(FakeEcs([raw_service("a", **RELAXED)], TASK_DEFINITIONS), Metrics()).check()
    assert caplog.records == []


async def test_check_records_when_it_last_succeeded() -> None:
    clock = ManualClock()
    guard_rails = GuardRails(FakeEcs([]), CLUSTER, Metrics().drain_risk_services, clock)
    assert guard_rails.checked_at is None
    clock.advance(42)
    await guard_rails.check()
    assert guard_rails.checked_at == 42


async def test_run_forever_checks_at_once_then_every_interval_and_survives_failures(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="scaler.guard")
    stop = asyncio.Event()
    scans: list[int] = []

    async def scan(ecs: Any, cluster: str, known: Any = None) -> list[ServiceView]:
        scans.append(len(scans))
        if len(scans) == 2:
            raise ConnectionError("ECS is away")
        if len(scans) == 4:
            stop.set()
        return [view("a", minimum_healthy_percent=100)]

    monkeypatch.setattr(guard, "scan_services", scan)
    metrics = Metrics()
    async with asyncio.timeout(5):
        await rails(FakeEcs([]), metrics, interval=0.01).run_forever(stop)
    assert len(scans) == 4
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.message for r in failures] == ["drain guard rails check failed"]
    assert failures[0].exc_info is not None
    assert len(warnings_of(caplog)) == 1  # the failure did not reset what was reported
    assert gauge_values(metrics)["min_healthy_100"] == 1.0


async def test_run_forever_checks_once_at_start_and_waits_for_stop() -> None:
    stop = asyncio.Event()
    ecs = FakeEcs([raw_service("a")], TASK_DEFINITIONS)
    task = asyncio.create_task(rails(ecs, Metrics(), interval=300).run_forever(stop))
    await asyncio.sleep(0.05)
    assert ecs.count("DescribeServices") == 1 and not task.done()
    stop.set()
    async with asyncio.timeout(1):
        await task
    assert ecs.count("DescribeServices") == 1


async def test_run_forever_returns_at_once_if_already_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    ecs = FakeEcs([raw_service("a")], TASK_DEFINITIONS)
    await rails(ecs, Metrics()).run_forever(stop)
    assert ecs.calls == []


def test_risks_are_values() -> None:
    risk = DrainRisk("a", "no_surge_room", "x")
    assert risk == DrainRisk("a", "no_surge_room", "x")
    assert len({risk, DrainRisk("a", "no_surge_room", "x")}) == 1
    with pytest.raises(AttributeError):
        risk.cause = "other"  # type: ignore[misc]


async def test_a_task_definition_read_once_is_not_read_again_by_the_next_scan() -> None:
    """Revisions never change: the guard's scans read each task definition once (an
    unreadable one is tried again)."""
    missing = "arn:aws:ecs:us-east-1:123456789012:task-definition/gone:1"
    services = [
        raw_service("a", taskDefinition=SLOW_TD),
        raw_service("b", taskDefinition=PLAIN_TD),
        raw_service("c", taskDefinition=missing),
    ]
    ecs = FakeEcs(services, TASK_DEFINITIONS)
    known: dict[str, int | None] = {}
    first = await scan_services(ecs, CLUSTER, known)
    second = await scan_services(ecs, CLUSTER, known)
    assert first == second
    described = [td for op, td in ecs.calls if op == "DescribeTaskDefinition"]
    assert sorted(described) == sorted([SLOW_TD, PLAIN_TD, missing, missing])
