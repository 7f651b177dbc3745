"""Reservation advice: stable, never below the floor, never from too few samples; hot spots."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from scaler.ecs.cluster import Cluster, InstanceType, ServiceSpec, Strategy
from scaler.plan.advice import (
    CPU,
    MEMORY,
    RESOURCES,
    AdvicePolicy,
    Measured,
    advise_one,
    p90,
    plan_advice,
)
from scaler.plan.rebalance import RebalancePolicy, hot_instances

POLICY = AdvicePolicy(min_samples=10, min_window=600.0)
M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
BINPACK = (Strategy("binpack", "memory"),)


def measured(samples: list[float], reserved: int = 1024, resource: str = CPU) -> Measured:
    return Measured("web", resource, reserved, tuple(samples), 60.0 * len(samples))


uses = st.lists(st.floats(0.0, 20_000.0, allow_nan=False), min_size=1, max_size=60)
reservations = st.integers(1, 16_384)
policies = st.builds(
    AdvicePolicy,
    over=st.floats(1.0, 3.0),
    under=st.floats(0.05, 1.0),
    headroom=st.floats(1.0, 2.0),
    min_samples=st.integers(1, 30),
    min_window=st.floats(0.0, 3600.0),
)


@given(uses, reservations, policies)
def test_applied_advice_is_stable(
    samples: list[float], reserved: int, policy: AdvicePolicy
) -> None:
    first = advise_one(measured(samples, reserved), policy)
    if first is not None:
        # the same use measured against the advised reservation: nothing more to advise
        assert advise_one(measured(samples, first.advised), policy) is None


@given(uses, reservations, policies)
def test_never_below_the_floor(samples: list[float], reserved: int, policy: AdvicePolicy) -> None:
    advice = advise_one(measured(samples, reserved), policy)
    assert advice is None or advice.advised >= policy.floor
    assert advice is None or advice.advised % policy.step == 0


@given(uses, reservations, policies)
def test_never_from_too_few_samples_or_too_short_a_window(
    samples: list[float], reserved: int, policy: AdvicePolicy
) -> None:
    m = measured(samples, reserved)
    if len(samples) < policy.min_samples or m.window < policy.min_window:
        assert advise_one(m, policy) is None


@given(uses, reservations)
def test_over_use_only_raises_and_under_use_only_lowers(
    samples: list[float], reserved: int
) -> None:
    advice = advise_one(measured(samples, reserved), AdvicePolicy(min_samples=1, min_window=0))
    if advice is not None:
        high = advice.evidence.p90 > reserved
        assert (advice.advised > reserved) == high


def test_one_spike_never_advises() -> None:
    assert advise_one(measured([800.0] * 19 + [5000.0]), POLICY) is None


def test_over_use_is_advised_with_headroom_rounded_up() -> None:
    advice = advise_one(measured([1300.0] * 10), POLICY)  # 127% of 1024
    assert advice is not None
    assert advice.advised == 1664  # 1300 x 1.25 = 1625, up to a multiple of 64
    assert (advice.evidence.samples, advice.evidence.p90, advice.evidence.window) == (
        10,
        1300.0,
        600.0,
    )


def test_under_use_is_advised_down_to_the_floor_at_most() -> None:
    advice = advise_one(measured([10.0] * 10, 2048, MEMORY), POLICY)
    assert advice is not None and advice.advised == 128 and advice.resource == MEMORY
    assert advise_one(measured([10.0] * 10, 128), POLICY) is None  # already at the floor


def test_use_near_the_reservation_is_no_advice() -> None:
    assert advise_one(measured([1000.0] * 10), POLICY) is None


def test_p90_is_nearest_rank() -> None:
    assert p90([float(n) for n in range(1, 11)]) == 9.0
    assert p90([7.0]) == 7.0


def test_short_measurements_are_reported_as_waiting() -> None:
    plan = plan_advice([measured([1300.0] * 3)], POLICY)
    assert plan.advice == () and "3 samples over 180 s" in plan.waiting[0]


def test_hot_spots_removed_counts_instances_the_tasks_no_longer_fit() -> None:
    """Two instances full of tasks that reserve 1024 and use 1300: both hot; with 1664 CPU
    units each, four tasks could not share an instance. A cool, barely used service's advice
    relieves nothing."""
    cluster = Cluster()
    for n in range(3):
        cluster.register(cluster.launch("p", M5, "a", "spot", 0.07, 0.0, id=f"i-{n}"), 0.0)
    hot_spec = ServiceSpec("web", 8, 1024, 1024, strategies=BINPACK, cpu_use=1300 / 1024)
    web = cluster.add_service(hot_spec)
    idle = cluster.add_service(replace(hot_spec, name="idle", desired=1, cpu=512, cpu_use=0.05))
    instances = list(cluster.instances.values())
    for inst in instances[:2]:
        for _ in range(4):
            cluster.mark_running(cluster.start_task(web, inst, "a", 0.0))
    cluster.mark_running(cluster.start_task(idle, instances[2], "a", 0.0))
    hot = hot_instances(cluster.instances.values(), RebalancePolicy())
    assert [i.id for i in hot] == ["i-0", "i-1"]
    plan = plan_advice(
        [
            Measured("web", CPU, 1024, (1300.0,) * 10, 600.0),
            Measured("idle", CPU, 512, (25.0,) * 10, 600.0),
        ],
        POLICY,
        hot,
    )
    by_service = {a.service: a for a in plan.advice}
    assert by_service["web"].advised == 1664 and by_service["web"].hot_spots_removed == 2
    assert by_service["idle"].advised == 128 and by_service["idle"].hot_spots_removed == 0
    assert (plan.hot, plan.hot_spots_removed) == (2, 2)


def test_every_resource_is_in_the_metrics_row() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    row = next(line for line in page.splitlines() if "`scaler_reservation_advice`" in line)
    assert all(f"`{resource}`" in row for resource in RESOURCES)
