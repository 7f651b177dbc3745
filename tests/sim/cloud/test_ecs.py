"""Simulated ECS over the engine's model, through real clients: what the scaler reads of it is
what ECS says, including what moto does not do (tasks DEACTIVATING through their load
balancer's deregistration delay, left out of runningTasksCount; batch limits)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.ecs import describe_container_instances, list_container_instance_arns
from scaler.aws.tasks import is_empty
from scaler.ecs.cluster import Task
from scaler.metrics import Metrics
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from scaler.sim.scenario import Scenario
from tests.sim.cloud.simulated import Idle
from tests.sim.workload_scenarios import scenario

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))


def _in_cluster(world: Scenario, body: Callable[[Any, Sim], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        sim = Sim(world, Idle(), seed=1)
        driver = LoopDriver(sim)
        stop = asyncio.Event()
        driving = asyncio.create_task(driver.run(stop))
        aws_world = SimulatedAws({"ecs": Ecs(driver, "prod")})
        async with AwsClients(TARGET, Metrics(), aws_world.install) as aws:
            await asyncio.sleep(300)  # the services are placed and running
            try:
                return await body(aws.ecs, sim)
            finally:
                stop.set()
                await driving

    return run(main())


def _with_delay(seconds: float) -> Scenario:
    services = [
        {"name": "web", "desired": 8, "cpu": 512, "memory": 1024},
        {"name": "api", "desired": 4, "cpu": 1024, "memory": 2048, "deregistration_delay": seconds},
    ]
    return scenario(services=services)


async def _busiest(ecs: Any) -> Any:
    arns = await list_container_instance_arns(ecs, "prod")
    described = await describe_container_instances(ecs, "prod", arns)
    return max(described, key=lambda ci: ci.running_tasks)


def test_container_instances_read_as_ecs_describes_them() -> None:
    async def body(ecs: Any, sim: Sim) -> tuple[int, int]:
        arns = await list_container_instance_arns(ecs, "prod")
        described = await describe_container_instances(ecs, "prod", arns)
        return len(described), sum(ci.running_tasks for ci in described)

    count, running = _in_cluster(scenario(), body)
    assert count == 8
    assert running == 12


def test_a_drained_instance_keeps_its_deactivating_tasks_out_of_the_running_count() -> None:
    async def body(ecs: Any, sim: Sim) -> list[tuple[int, bool]]:
        busiest = await _busiest(ecs)
        await ecs.update_container_instances_state(
            cluster="prod", containerInstances=[busiest.arn], status="DRAINING"
        )
        seen = []
        for wait in (150, 400):
            await asyncio.sleep(wait)
            again = await describe_container_instances(ecs, "prod", [busiest.arn])
            seen.append((again[0].running_tasks, await is_empty(ecs, "prod", busiest.arn)))
        return seen

    (running_soon, empty_soon), (running_later, empty_later) = _in_cluster(_with_delay(300), body)
    assert running_soon == 0, "runningTasksCount leaves out the tasks being stopped"
    assert not empty_soon, "but the api task still deregisters from its load balancer"
    assert (running_later, empty_later) == (0, True)


def test_without_a_delay_a_drained_instance_empties_at_once() -> None:
    async def body(ecs: Any, sim: Sim) -> bool:
        busiest = await _busiest(ecs)
        await ecs.update_container_instances_state(
            cluster="prod", containerInstances=[busiest.arn], status="DRAINING"
        )
        await asyncio.sleep(120)
        return await is_empty(ecs, "prod", busiest.arn)

    assert _in_cluster(scenario(), body)


def test_more_than_ten_instances_a_state_change_is_refused() -> None:
    async def body(ecs: Any, sim: Sim) -> None:
        arns = [
            f"arn:aws:ecs:us-east-1:123456789012:container-instance/prod/i-{i}" for i in range(11)
        ]
        await ecs.update_container_instances_state(
            cluster="prod", containerInstances=arns, status="DRAINING"
        )

    with pytest.raises(ClientError, match="InvalidParameterException"):
        _in_cluster(scenario(), body)


def test_a_reactivated_instance_takes_tasks_again() -> None:
    async def body(ecs: Any, sim: Sim) -> str:
        busiest = await _busiest(ecs)
        await ecs.update_container_instances_state(
            cluster="prod", containerInstances=[busiest.arn], status="DRAINING"
        )
        await ecs.update_container_instances_state(
            cluster="prod", containerInstances=[busiest.arn], status="ACTIVE"
        )
        return str((await describe_container_instances(ecs, "prod", [busiest.arn]))[0].status)

    assert _in_cluster(scenario(), body) == "ACTIVE"


@pytest.mark.parametrize(
    ("reason", "counted"),
    [
        ("scaler: rebalance off CPU-hot i-0123", "rebalance"),
        ("scaler: evacuated before the spot notice ends", "evacuated"),
        ("scaler: restarted elsewhere before i-0123 goes away", "evacuated"),
        ("an operator's own reason", "an operator's own reason"),
    ],
)
def test_a_task_the_scaler_stops_to_move_it_is_counted_as_a_move(reason: str, counted: str) -> None:
    """The engine's figures (task moves, minimum-health violations) know a move by its reason:
    the scaler's StopTask reasons are mapped onto the engine's."""

    async def body(ecs: Any, sim: Sim) -> list[str]:
        stopped: list[str] = []
        stop = sim.stop_task

        def noted(task: Task, why: str) -> None:
            stopped.append(why)
            stop(task, why)

        sim.stop_task = noted  # type: ignore[method-assign,assignment]
        arns = (await ecs.list_tasks(cluster="prod", serviceName="web"))["taskArns"]
        await ecs.stop_task(cluster="prod", task=arns[0], reason=reason)
        return stopped

    assert _in_cluster(scenario(), body) == [counted]
