"""The simulation engine (scaler.sim.engine) on small hand-made scenarios.

A ``Recorder`` policy hears every signal (with the virtual time it arrived), can drain at the spot
warning, and runs scripted actions and probes at chosen virtual times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from scaler.ecs.cluster import (
    ACTIVE,
    LAUNCHING,
    PENDING,
    RUNNING,
    InstanceType,
    ServiceSpec,
    Strategy,
)
from scaler.events import InstanceStateChange, RebalanceRecommendation, Signal, SpotInterruption
from scaler.sim.builtin import builtin
from scaler.sim.engine import EPOCH, NOTICE, SCHEDULER_DELAY, Sim
from scaler.sim.run import simulate
from scaler.sim.scenario import Event, Pool, Scenario

ROOT = Path(__file__).resolve().parents[2]
A, B = "us-east-1a", "us-east-1b"
XLARGE = InstanceType("m5.xlarge", 4, 16384, 0.192)
LARGE = InstanceType("m5.large", 2, 8192, 0.096)
TYPES = {t.name: t for t in (XLARGE, LARGE)}

S = TypeVar("S", bound=Signal)
Action = Callable[[Sim], None]


class Recorder:
    """A policy that records signals; optionally drains at the warning; runs scripted actions."""

    name = "recorder"

    def __init__(
        self, *, drain_on_warning: bool = False, actions: Sequence[tuple[float, Action]] = ()
    ) -> None:
        self.drain_on_warning = drain_on_warning
        self.actions = list(actions)
        self.signals: list[tuple[float, Signal]] = []

    def start(self, sim: Sim) -> None:
        for t, action in self.actions:
            sim.at(t, action, sim)

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        self.signals.append((sim.now, signal))
        if self.drain_on_warning and isinstance(signal, SpotInterruption):
            inst = sim.instance(signal.instance_id)
            if inst is not None:
                sim.drain([inst])

    def received(self, kind: type[S]) -> list[tuple[float, S]]:
        return [(t, s) for t, s in self.signals if isinstance(s, kind)]


def scenario(
    pools: Sequence[Pool],
    services: Sequence[ServiceSpec] = (),
    events: Sequence[Event] = (),
    hours: float = 1.0,
    boot_delay: tuple[float, float] = (60.0, 120.0),
) -> Scenario:
    return Scenario(
        "test",
        hours,
        dict(TYPES),
        tuple(pools),
        tuple(services),
        tuple(events),
        boot_delay=boot_delay,
    )


def web(desired: int = 4, **kw: Any) -> ServiceSpec:
    base: dict[str, Any] = {
        "min_healthy_percent": 100,
        "max_percent": 200,
        "start_delay": 20.0,
        "health_delay": 40.0,
    }
    return ServiceSpec("web", desired, 512, 1024, **(base | kw))


def launcher(pool: str, count: int = 1) -> Action:
    def go(sim: Sim) -> None:
        assert sim.launch(pool, count) == count

    return go


def virtual(signal: Signal) -> float:
    """The virtual time a signal's ``time`` stands for."""
    assert signal.time is not None
    return (signal.time - EPOCH) / timedelta(seconds=1)


def spot_a(initial: int = 1, **kw: Any) -> Pool:
    return Pool("spot-a", "spot", XLARGE.name, A, 0.06, initial=initial, **kw)


def od(az: str = B, initial: int = 1) -> Pool:
    return Pool(f"od-{az[-1]}", "on-demand", XLARGE.name, az, initial=initial)


# -- instances and tasks take time --------------------------------------------------------------


def test_launched_instances_register_after_the_boot_delay_not_before() -> None:
    seen: dict[str, Any] = {}

    def launch(sim: Sim) -> None:
        seen["launched"] = sim.launch("od-a", 6)

    def probe(label: str) -> Action:
        def look(sim: Sim) -> None:
            seen[label] = Counter(i.status for i in sim.cluster.instances.values())

        return look

    policy = Recorder(actions=[(100.0, launch), (159.99, probe("early")), (220.01, probe("late"))])
    sim = Sim(scenario([od(A, initial=0)], boot_delay=(60.0, 120.0)), policy, seed=3)
    sim.run()
    assert seen["launched"] == 6
    assert seen["early"] == {LAUNCHING: 6}
    assert seen["late"] == {ACTIVE: 6}
    delays = []
    for inst in sim.cluster.instances.values():
        assert inst.launched_at == 100.0
        assert inst.registered_at is not None
        delays.append(inst.registered_at - inst.launched_at)
    assert all(60.0 <= d <= 120.0 for d in delays)
    assert len(set(delays)) == 6  # drawn, not fixed


def test_unplaced_tasks_are_placed_once_a_launched_instance_registers() -> None:
    sim = Sim(
        scenario([od(A, initial=0)], [web(2)]),
        Recorder(actions=[(100.0, launcher("od-a"))]),
        seed=1,
    )
    result = sim.run()
    [inst] = sim.cluster.instances.values()
    assert inst.registered_at is not None
    tasks = list(sim.cluster.services["web"].tasks.values())
    assert len(tasks) == 2
    assert {t.created_at for t in tasks} == {inst.registered_at + SCHEDULER_DELAY}
    healthy_from = inst.registered_at + SCHEDULER_DELAY + 20.0 + 40.0
    assert result["availability"] == pytest.approx(1 - healthy_from / 3600, abs=1e-6)


def test_tasks_run_after_start_delay_and_count_healthy_after_health_delay() -> None:
    start, health = 30.0, 50.0
    placed = 600.0 + SCHEDULER_DELAY
    seen: dict[float, tuple[list[str], list[bool], int]] = {}

    def scale_out(sim: Sim) -> None:
        sim.cluster.set_desired("web", 4)

    def probe(sim: Sim) -> None:
        new = [t for t in sim.cluster.services["web"].tasks.values() if t.created_at > 0]
        seen[sim.now] = (
            [t.state for t in new],
            [t.healthy(sim.now) for t in new],
            sim.acct.healthy["web"],
        )

    running_at, healthy_at = placed + start, placed + start + health
    times = (running_at - 0.01, running_at + 0.01, healthy_at - 0.01, healthy_at + 0.01)
    actions: list[tuple[float, Action]] = [(600.0, scale_out), *((t, probe) for t in times)]
    sim = Sim(
        scenario([od(A)], [web(2, start_delay=start, health_delay=health)]),
        Recorder(actions=actions),
        seed=1,
    )
    result = sim.run()
    before_running, running, almost, healthy = (seen[t] for t in times)
    assert before_running == ([PENDING, PENDING], [False, False], 2)
    assert running == ([RUNNING, RUNNING], [False, False], 2)
    assert almost == ([RUNNING, RUNNING], [False, False], 2)
    assert healthy == ([RUNNING, RUNNING], [True, True], 4)
    # availability dips (2 of 4 healthy) from 600 s until the new tasks are healthy, then recovers
    gap = SCHEDULER_DELAY + start + health
    want = 2 * 600 + 4 * 3000
    assert result["availability"] == round((want - 2 * gap) / want, 6)
    assert result["worst_5m_availability"] == round((4 * 300 - 2 * gap) / (4 * 300), 6)


# -- spot warnings ---------------------------------------------------------------------------------


def _storm_at_600(drain: bool) -> tuple[Sim, Recorder, dict[str, Any]]:
    """A spot instance in AZ a (2 tasks of web) and an on-demand one in b (2 tasks, room)."""
    seen: dict[str, Any] = {}

    def probe(label: str) -> Action:
        def look(sim: Sim) -> None:
            seen[label] = {i.id for i in sim.cluster.instances.values() if i.capacity == "spot"}

        return look

    policy = Recorder(
        drain_on_warning=drain,
        actions=[(1.0, probe("start")), (719.99, probe("before")), (720.01, probe("after"))],
    )
    storm = Event(600.0, "storm", {"share": 1.0, "over": 0.0})
    sim = Sim(scenario([spot_a(), od(B)], [web(4)], [storm]), policy, seed=1)
    seen["result"] = sim.run()
    return sim, policy, seen


def test_a_spot_warning_reaches_the_policy_a_second_later_and_the_instance_goes_120s_later() -> (
    None
):
    sim, policy, seen = _storm_at_600(drain=False)
    [spot] = seen["start"]
    [(arrived, warning)] = policy.received(SpotInterruption)
    assert warning.instance_id == spot
    assert virtual(warning) == 600.0
    assert arrived == 601.0
    assert seen["before"] == {spot}
    assert seen["after"] == set()
    [(_, gone)] = policy.received(InstanceStateChange)
    assert (gone.instance_id, gone.state) == (spot, "terminated")
    assert virtual(gone) == 600.0 + NOTICE
    assert spot in sim.terminated


def test_tasks_still_on_the_instance_at_termination_are_interrupted() -> None:
    _, _, seen = _storm_at_600(drain=False)
    result = seen["result"]
    assert result["interrupted_tasks"] == 2
    # replaced only after the instance is gone: a dip of 2 tasks for 5 + 20 + 40 s
    gap = NOTICE + SCHEDULER_DELAY + 20.0 + 40.0
    assert result["availability"] == round(1 - 2 * (gap - NOTICE) / (4 * 3600), 6)


def test_draining_at_the_warning_replaces_the_tasks_within_the_notice() -> None:
    sim, _, seen = _storm_at_600(drain=True)
    result = seen["result"]
    assert result["interrupted_tasks"] == 0
    assert result["availability"] == 1.0  # min 100 %: old tasks stop once replacements are healthy
    assert result["task_moves"] == 2
    assert result["api_calls"] == 1
    assert Counter(t.az for t in sim.cluster.services["web"].tasks.values()) == {B: 4}


def test_interruptions_from_a_pools_rate_follow_the_same_timeline() -> None:
    pools = [spot_a(6, interruptions_per_hour=4.0), od(B, initial=2)]
    policy = Recorder()
    sim = Sim(scenario(pools, [web(4)], hours=1.0), policy, seed=5)
    result = sim.run()
    warnings = policy.received(SpotInterruption)
    assert len(warnings) >= 3
    warned_at = {}
    for arrived, warning in warnings:
        assert arrived == pytest.approx(virtual(warning) + 1.0)
        warned_at[warning.instance_id] = virtual(warning)
    terminated = policy.received(InstanceStateChange)
    assert terminated
    for _, gone in terminated:
        assert virtual(gone) == pytest.approx(warned_at[gone.instance_id] + NOTICE)
    expected = {i for i, t in warned_at.items() if t + NOTICE <= 3600.0}
    assert {g.instance_id for _, g in terminated} == expected
    assert result["interrupted_tasks"] > 0


def test_rebalance_recommendations_arrive_rebalance_lead_seconds_before_the_warning() -> None:
    lead, storm_at = 200.0, 300.0
    storm = Event(
        storm_at,
        "storm",
        {"share": 1.0, "over": 1200.0, "rebalance_share": 1.0, "rebalance_lead": lead},
    )
    policy = Recorder()
    Sim(scenario([spot_a(8), od(B)], [web(4)], [storm]), policy, seed=2).run()
    warned = {s.instance_id: t for t, s in policy.received(SpotInterruption)}
    advised = {s.instance_id: t for t, s in policy.received(RebalanceRecommendation)}
    assert len(warned) == 8
    assert advised.keys() == warned.keys()
    full_lead = 0
    for iid, warning_arrived in warned.items():
        if warning_arrived - 1.0 - storm_at >= lead:
            assert warning_arrived - advised[iid] == pytest.approx(lead)
            full_lead += 1
        else:  # a warning sooner than the lead: the recommendation comes with the storm
            assert advised[iid] == storm_at + 1.0
    assert full_lead >= 3


def test_no_rebalance_recommendations_without_a_rebalance_share() -> None:
    storm = Event(300.0, "storm", {"share": 1.0, "over": 600.0})
    policy = Recorder()
    Sim(scenario([spot_a(4), od(B)], [web(4)], [storm]), policy, seed=2).run()
    assert len(policy.received(SpotInterruption)) == 4
    assert policy.received(RebalanceRecommendation) == []


# -- AZ outage -----------------------------------------------------------------------------------


def test_an_az_outage_terminates_the_az_without_warning_and_blocks_launches() -> None:
    seen: dict[str, Any] = {}

    def try_launch(pool: str, label: str) -> Action:
        def go(sim: Sim) -> None:
            seen[label] = sim.launch(pool, 1)

        return go

    def probe(sim: Sim) -> None:
        seen["azs"] = Counter(i.az for i in sim.cluster.instances.values())

    pools = [
        od(A, initial=2),
        od(B, initial=1),
        Pool("spot-b", "spot", XLARGE.name, B, 0.06, initial=1),
    ]
    policy = Recorder(
        actions=[
            (600.01, probe),
            (700.0, try_launch("od-b", "od-b during")),
            (700.0, try_launch("spot-b", "spot-b during")),
            (700.0, try_launch("od-a", "od-a during")),
            (1499.0, try_launch("od-b", "od-b just before the end")),
            (1501.0, try_launch("od-b", "od-b after")),
        ]
    )
    outage = Event(600.0, "az_outage", {"az": B, "duration": 900.0})
    sim = Sim(scenario(pools, [web(4)], [outage], hours=1.0), policy, seed=1)
    result = sim.run()
    assert seen["azs"] == {A: 2}
    assert policy.received(SpotInterruption) == []
    gone = policy.received(InstanceStateChange)
    assert len(gone) == 2
    assert {virtual(s) for _, s in gone} == {600.0}
    assert all(s.state == "terminated" for _, s in gone)
    assert seen["od-b during"] == seen["spot-b during"] == 0
    assert seen["od-a during"] == 1
    assert seen["od-b just before the end"] == 0
    assert seen["od-b after"] == 1
    assert result["interrupted_tasks"] == 2  # web's two tasks in AZ b, no notice
    assert Counter(i.az for i in sim.cluster.instances.values()) == {A: 3, B: 1}


def test_capacity_returning_after_an_az_outage_is_rebalanced_onto() -> None:
    pools = [od(A, initial=2), od(B, initial=2)]
    outage = Event(600.0, "az_outage", {"az": B, "duration": 900.0})
    policy = Recorder(actions=[(1600.0, launcher("od-b"))])
    sim = Sim(scenario(pools, [web(4)], [outage], hours=2.0), policy, seed=1)
    sim.run()
    assert Counter(t.az for t in sim.cluster.services["web"].tasks.values()) == {A: 2, B: 2}


# -- determinism -----------------------------------------------------------------------------------

POLICIES = ["scaler", "ecs-native", "ecs-scaler"]
CLI = [sys.executable, "-m", "scaler", "simulate", "--scenario", "storm", "--policy", "all"]


def test_simulate_is_a_pure_function_of_scenario_and_seed() -> None:
    first = simulate(builtin("storm"), POLICIES, seed=7)
    assert first == simulate(builtin("storm"), POLICIES, seed=7)
    assert set(first["results"]) == set(POLICIES)
    assert first["results"]["ecs-native"]["interrupted_tasks"] >= 0
    assert first != simulate(builtin("storm"), POLICIES, seed=8)  # the seed does matter


def test_simulate_does_not_depend_on_the_hash_seed() -> None:
    outputs = []
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [*CLI, "--json", "--seed", "7"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert json.loads(outputs[0]) == simulate(builtin("storm"), POLICIES, seed=7)


# -- accounting ------------------------------------------------------------------------------------


def test_availability_is_one_for_a_steady_scenario_without_interruptions() -> None:
    services = [
        web(4),
        ServiceSpec("api", 3, 256, 512, strategies=(Strategy("binpack", "cpu"),)),
    ]
    result = Sim(scenario([od(A, 2), od(B, 1)], services, hours=2.0), Recorder(), seed=1).run()
    assert result["availability"] == 1.0
    assert result["worst_5m_availability"] == 1.0
    assert result["interrupted_tasks"] == 0
    assert result["task_moves"] == 0


def test_cost_is_price_times_hours_for_a_fixed_fleet() -> None:
    pools = [
        Pool("spot-a", "spot", XLARGE.name, A, 0.0731, initial=1),
        Pool("spot-b", "spot", XLARGE.name, B, 0.1142, initial=1),
    ]
    sim = Sim(scenario(pools, [web(2)], hours=1.0), Recorder(), seed=1)
    result = sim.run()
    assert sim.acct.cost == pytest.approx(0.0731 + 0.1142)  # 2 instances x 1 h
    assert result["cost_usd"] == round(0.0731 + 0.1142, 2) == 0.19
    assert sim.acct.od_equiv == pytest.approx(2 * XLARGE.on_demand_price)
    assert result["on_demand_equivalent_cost_usd"] == round(2 * 0.192, 2) == 0.38
    assert result["on_demand_share"] == 0.0


def test_cost_counts_an_instance_from_launch_and_on_demand_at_its_type_price() -> None:
    pools = [
        Pool("spot-a", "spot", XLARGE.name, A, 0.0731, initial=1),
        Pool("od-b", "on-demand", LARGE.name, B),
    ]
    policy = Recorder(actions=[(1800.0, launcher("od-b"))])
    sim = Sim(scenario(pools, hours=1.0), policy, seed=1)
    result = sim.run()
    # the boot delay is paid for: half an hour of m5.large, not half an hour less the boot
    assert sim.acct.cost == pytest.approx(0.0731 + 0.5 * LARGE.on_demand_price)
    assert sim.acct.od_equiv == pytest.approx(XLARGE.on_demand_price + 0.5 * LARGE.on_demand_price)
    on_demand_vcpu_hours = 0.5 * LARGE.vcpu
    assert result["on_demand_share"] == round(
        on_demand_vcpu_hours / (XLARGE.vcpu + on_demand_vcpu_hours), 4
    )


@pytest.mark.parametrize(("cpu_use", "share"), [(0.9, 1.0), (0.5, 0.0)])
def test_hot_instance_share(cpu_use: float, share: float) -> None:
    # two m5.large, each fully reserved by two 1024-unit tasks: load = cpu_use, threshold 0.8
    service = ServiceSpec(
        "web", 4, 1024, 1024, cpu_use=cpu_use, strategies=(Strategy("spread", "instanceId"),)
    )
    pools = [Pool("od-a", "on-demand", LARGE.name, A, initial=2)]
    sim = Sim(scenario(pools, [service], hours=1.0), Recorder(), seed=1)
    result = sim.run()
    assert [i.load for i in sim.cluster.instances.values()] == [cpu_use, cpu_use]
    assert result["hot_instance_share"] == share


def test_hot_instance_share_is_time_weighted() -> None:
    # one instance hot from the start; from 1800 s the service scales in and it cools down
    service = ServiceSpec(
        "web", 2, 1024, 1024, cpu_use=0.9, strategies=(Strategy("binpack", "cpu"),)
    )
    pools = [Pool("od-a", "on-demand", LARGE.name, A, initial=1)]
    policy = Recorder(actions=[(1800.0, lambda sim: sim.cluster.set_desired("web", 1))])
    result = Sim(scenario(pools, [service], hours=1.0), policy, seed=1).run()
    cooled = 1800.0 + SCHEDULER_DELAY
    assert result["hot_instance_share"] == round(cooled / 3600, 4)


def test_task_moves_count_the_az_rebalancers_moves() -> None:
    pools = [od(A, initial=2), od(B, initial=2)]
    outage = Event(600.0, "az_outage", {"az": B, "duration": 900.0})
    policy = Recorder(
        actions=[
            (1600.0, launcher("od-b")),
            # wake the service (the engine does not on registration: see the test above)
            (1800.0, lambda sim: sim.cluster.set_desired("web", 4)),
        ]
    )
    sim = Sim(scenario(pools, [web(4)], [outage], hours=2.0), policy, seed=1)
    result = sim.run()
    assert Counter(t.az for t in sim.cluster.services["web"].tasks.values()) == {A: 2, B: 2}
    assert result["task_moves"] == 2
