"""The simulated ECS shares what its reads derive from the model while the model stands still
(:mod:`scaler.sim.cloud.ecs_reads`); a change between two reads shows on the next exactly as an
ECS that never read before answers it: a task stopped or moved between two pages of a listing,
or between two DescribeTasks calls, and a task's health, which time alone changes; a container
instance drained, given tasks or attributes between two DescribeContainerInstances calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from scaler.ecs.cluster import Task
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from tests.sim.cloud.simulated import Idle
from tests.sim.workload_scenarios import scenario

SERVICES = [
    {"name": "web", "desired": 8, "cpu": 512, "memory": 1024, "health_delay": 60},
    {"name": "api", "desired": 4, "cpu": 1024, "memory": 2048, "deregistration_delay": 30},
]
Body = Callable[[Ecs, LoopDriver, Sim], Awaitable[Any]]


def _in_cluster(body: Body) -> Any:
    async def main() -> Any:
        sim = Sim(scenario(services=SERVICES), Idle(), seed=1)
        driver = LoopDriver(sim)
        stop = asyncio.Event()
        driving = asyncio.create_task(driver.run(stop))
        await asyncio.sleep(300)  # the services are placed and running
        driver.sync()  # the model is at the loop's time: changes to it are made now
        try:
            return await body(Ecs(driver, "prod"), driver, sim)
        finally:
            stop.set()
            await driving

    return run(main())


async def _same(ecs: Ecs, driver: LoopDriver, operation: str, **params: Any) -> dict[str, Any]:
    """``ecs``'s answer, which is the answer of an ECS that never read before (with the same
    attributes put)."""
    seen = await ecs.answer(operation, params)
    fresh = Ecs(driver, "prod")
    fresh.attributes = ecs.attributes
    assert seen == await fresh.answer(operation, params)
    return seen


def _task(sim: Sim, arn: str) -> Task:
    return next(t for s in sim.cluster.services.values() for t in s.tasks.values() if t.id in arn)


def test_a_task_stopped_between_two_pages_of_a_listing_is_not_on_the_next() -> None:
    async def body(ecs: Ecs, driver: LoopDriver, sim: Sim) -> tuple[list[str], list[str]]:
        every = await _same(ecs, driver, "ListTasks", cluster="prod")
        first = await _same(ecs, driver, "ListTasks", cluster="prod", maxResults=5)
        sim.stop_task(_task(sim, first["taskArns"][0]), "test")  # a web task: STOPPED at once
        token = first["nextToken"]
        second = await _same(
            ecs, driver, "ListTasks", cluster="prod", maxResults=5, nextToken=token
        )
        await _same(ecs, driver, "ListTasks", cluster="prod", desiredStatus="STOPPED")
        return every["taskArns"], second["taskArns"]

    every, second = _in_cluster(body)
    assert second[0] == every[6]  # the listing moved up by the task stopped


def test_tasks_moved_off_a_drained_instance_leave_its_listing() -> None:
    async def body(ecs: Ecs, driver: LoopDriver, sim: Sim) -> tuple[list[str], list[str]]:
        busiest = max(sim.cluster.instances.values(), key=lambda i: len(i.tasks))
        arn = ecs.arn_of_instance(busiest)
        on = await _same(ecs, driver, "ListTasks", cluster="prod", containerInstance=arn)
        await _same(ecs, driver, "ListTasks", cluster="prod", serviceName="web", maxResults=5)
        sim.drain([busiest])
        await asyncio.sleep(120)  # the replacements run; the web tasks left it
        after = await _same(ecs, driver, "ListTasks", cluster="prod", containerInstance=arn)
        await _same(ecs, driver, "ListTasks", cluster="prod", serviceName="web", maxResults=5)
        return on["taskArns"], after["taskArns"]

    before, after = _in_cluster(body)
    assert before != after


def test_a_task_stopped_between_two_describes_is_described_as_it_is_then() -> None:
    async def body(ecs: Ecs, driver: LoopDriver, sim: Sim) -> list[tuple[str, str]]:
        arns = (await _same(ecs, driver, "ListTasks", cluster="prod"))["taskArns"]
        await _same(ecs, driver, "DescribeTasks", cluster="prod", tasks=arns)
        api = [_task(sim, a) for a in arns if _task(sim, a).service.name == "api"]
        web = [_task(sim, a) for a in arns if _task(sim, a).service.name == "web"]
        sim.stop_task(api[0], "test")  # DEACTIVATING through its deregistration delay
        sim.stop_task(web[0], "test")  # gone at once
        seen = await _same(ecs, driver, "DescribeTasks", cluster="prod", tasks=arns)
        failed = [(f["arn"], f["reason"]) for f in seen["failures"]]
        return [*failed, *((t["taskArn"], t["lastStatus"]) for t in seen["tasks"])]

    described = _in_cluster(body)
    assert ("MISSING" in {s for _, s in described}) and (
        "DEACTIVATING" in {s for _, s in described}
    )


def test_a_task_starting_and_turning_healthy_between_two_describes() -> None:
    async def body(ecs: Ecs, driver: LoopDriver, sim: Sim) -> list[str]:
        busiest = max(sim.cluster.instances.values(), key=lambda i: len(i.tasks))
        sim.drain([busiest])
        await asyncio.sleep(10)  # the replacements are placed: PENDING
        arns = (await _same(ecs, driver, "ListTasks", cluster="prod"))["taskArns"]
        seen = []
        for _ in range(12):  # PENDING, RUNNING and UNKNOWN, RUNNING and HEALTHY
            described = await _same(ecs, driver, "DescribeTasks", cluster="prod", tasks=arns)
            seen += [f"{t['lastStatus']} {t['healthStatus']}" for t in described["tasks"]]
            await asyncio.sleep(10)
        return seen

    seen = set(_in_cluster(body))
    assert {"PENDING UNKNOWN", "RUNNING UNKNOWN", "RUNNING HEALTHY"} <= seen


def test_instances_changed_between_two_describes_are_described_as_they_are_then() -> None:
    async def body(ecs: Ecs, driver: LoopDriver, sim: Sim) -> list[dict[str, Any]]:
        listed = await _same(ecs, driver, "ListContainerInstances", cluster="prod")
        arns = listed["containerInstanceArns"]
        params = {"cluster": "prod", "containerInstances": arns}
        seen = [await _same(ecs, driver, "DescribeContainerInstances", **params)]
        mark = {"name": "drain", "value": "yes", "targetId": arns[0]}
        await _same(ecs, driver, "PutAttributes", cluster="prod", attributes=[mark])
        seen.append(await _same(ecs, driver, "DescribeContainerInstances", **params))
        api = next(t for t in sim.cluster.services["api"].tasks.values())
        sim.stop_task(api, "test")  # DEACTIVATING: its reservation held 30 s, then free
        for _ in range(4):
            await asyncio.sleep(10)
            seen.append(await _same(ecs, driver, "DescribeContainerInstances", **params))
        busiest = max(sim.cluster.instances.values(), key=lambda i: len(i.tasks))
        sim.drain([busiest])  # its tasks move: counts and free resources change
        for _ in range(3):
            seen.append(await _same(ecs, driver, "DescribeContainerInstances", **params))
            await asyncio.sleep(15)
        return [ci for answer in seen for ci in answer["containerInstances"]]

    seen = _in_cluster(body)
    assert {"ACTIVE", "DRAINING"} == {ci["status"] for ci in seen}
    assert len({(ci["runningTasksCount"], ci["pendingTasksCount"]) for ci in seen}) > 2
    assert any({"name": "drain", "value": "yes"} in ci["attributes"] for ci in seen)
