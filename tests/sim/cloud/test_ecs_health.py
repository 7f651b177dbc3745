"""Simulated ECS tells a task's health as ECS does: ``startedAt`` once RUNNING, ``healthStatus``
UNKNOWN until the model counts it healthy and HEALTHY from then on, and a container health
check in the task definition whose worst case is the service's health delay."""

from __future__ import annotations

import asyncio
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.aws.live import live_cluster
from scaler.guard import container_health_check_seconds
from scaler.metrics import Metrics
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from tests.sim.cloud.simulated import Idle
from tests.sim.cloud.test_ecs import TARGET
from tests.sim.workload_scenarios import scenario

SERVICES = [{"name": "web", "desired": 2, "cpu": 512, "memory": 1024, "health_delay": 45}]


async def _seen(ecs: Any, arn: str) -> dict[str, Any]:
    """One task's DescribeTasks entry."""
    answer = await ecs.describe_tasks(cluster="prod", tasks=[arn])
    return dict(answer["tasks"][0])


def test_a_new_task_reports_started_and_then_healthy() -> None:
    async def main() -> tuple[list[tuple[str, str, bool]], float, float, int | None, bool]:
        sim = Sim(scenario(services=SERVICES), Idle(), seed=1)
        driver = LoopDriver(sim)
        stop = asyncio.Event()
        driving = asyncio.create_task(driver.run(stop))
        world = SimulatedAws({"ecs": Ecs(driver, "prod")})
        async with AwsClients(TARGET, Metrics(), world.install) as aws:
            await asyncio.sleep(300)  # the service is placed, running and healthy
            await aws.ecs.update_service(cluster="prod", service="web", desiredCount=3)
            state = sim.cluster.services["web"]
            for _ in range(120):  # the service scheduler starts the extra task
                if len(state.tasks) == 3:
                    break
                await asyncio.sleep(1)
            new = max(state.tasks.values(), key=lambda t: t.created_at)
            arn = f"arn:aws:ecs:us-east-1:123456789012:task/prod/{new.id}"
            seen = []
            for at in (sim.now, new.running_at + 1, new.healthy_at - 2, new.healthy_at + 1):
                await asyncio.sleep(at - sim.now)
                raw = await _seen(aws.ecs, arn)
                seen.append((raw["lastStatus"], raw["healthStatus"], "startedAt" in raw))
            raw = await _seen(aws.ecs, arn)
            started = raw["startedAt"].timestamp() - sim.wall(0).timestamp()
            defined = await aws.ecs.describe_task_definition(
                taskDefinition=raw["taskDefinitionArn"]
            )
            checks = container_health_check_seconds(defined["taskDefinition"])
            live = await live_cluster(aws, "prod")
            now = sim.wall().timestamp()
            healthy = sum(t.healthy(now) for t in live.model.services["web"].tasks.values()) == 3
            stop.set()
            await driving
        return seen, started, new.running_at, checks, healthy

    seen, started, running_at, checks, healthy = run(main())
    assert seen == [
        ("PENDING", "UNKNOWN", False),
        ("RUNNING", "UNKNOWN", True),  # running, its health check not passed yet
        ("RUNNING", "UNKNOWN", True),
        ("RUNNING", "HEALTHY", True),
    ]
    assert abs(started - running_at) < 1.0
    assert checks == 45  # the health delay, as the task definition's health check tells it
    assert healthy  # the scaler's live model sees the new task healthy once ECS says so
