"""The roll's surge adapter against moto over HTTP: it reads a service's deployment bounds and
its mark, marks before it raises, sets back and unmarks, and changes nothing without the lease."""

from __future__ import annotations

import time

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.surges import ROLL_TAG, RollSurges
from scaler.ecs.health import ServiceHealth, healthy_count
from scaler.metrics import Metrics
from scaler.plan.roll import SurgeMark
from tests.integration.helpers import service_state, web_service
from tests.integration.test_surge_health import _report


class Lost:
    def holds(self) -> bool:
        return False


def _service(aws: testbed.LocalAws, check: bool = False) -> str:
    testbed.create_cluster(aws, "prod", size=1)
    testbed.manual_task_states(aws)
    return web_service(aws, max_percent=150, check=check)


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


async def test_a_surge_is_marked_raised_read_back_and_set_back(
    local_aws: testbed.LocalAws,
) -> None:
    arn = _service(local_aws)
    mark = SurgeMark(4, 2, "i-0abc", 1000.0)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        surges = RollSurges(aws, "prod", Metrics(), dry_run=False)
        read = await surges.read(["web"])
        assert read is not None
        web = read["web"]
        assert (web.desired, web.min_healthy_percent, web.max_percent) == (4, 50, 150)
        assert web.mark is None
        assert await surges.raise_count("web", mark, "raise web")
        assert service_state(local_aws, arn) == (6, {ROLL_TAG: "4 2 i-0abc 1000"})
        again = await RollSurges(aws, "prod", Metrics(), dry_run=False).read(["web"])
        assert again is not None and again["web"].mark == mark  # what a new leader finds
        assert await surges.set_back("web", 4, "set web back")
        assert service_state(local_aws, arn) == (4, {})


async def test_a_count_changed_meanwhile_is_left_and_unmarked(local_aws: testbed.LocalAws) -> None:
    arn = _service(local_aws)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        surges = RollSurges(aws, "prod", Metrics(), dry_run=False)
        await surges.read(["web"])
        assert await surges.raise_count("web", SurgeMark(4, 2, "i-0abc", 1000.0), "raise web")
        local_aws.client("ecs").update_service(cluster="prod", service="web", desiredCount=9)
        assert await surges.set_back("web", None, "unmark web")
        assert service_state(local_aws, arn) == (9, {})


async def test_nothing_changes_without_the_lease(local_aws: testbed.LocalAws) -> None:
    arn = _service(local_aws)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        surges = RollSurges(aws, "prod", metrics, dry_run=False)
        surges.leader = Lost()
        await surges.read(["web"])
        assert not await surges.raise_count("web", SurgeMark(4, 2, "i-0abc", 1000.0), "raise")
        assert service_state(local_aws, arn) == (4, {})
    labels = {"action": "roll_surge", "reason": "web", "outcome": "not_leader"}
    assert metrics.registry.get_sample_value("scaler_actions_total", labels) == 1


async def test_a_marked_service_is_read_with_its_tasks_health(local_aws: testbed.LocalAws) -> None:
    """The drain waits for the surge's extra tasks to be healthy: the adapter reads what ECS says
    of them (healthStatus, startedAt) and of the service (container health checks, grace)."""
    _service(local_aws, check=True)
    ecs = local_aws.client("ecs")
    ecs.update_service(cluster="prod", service="web", healthCheckGracePeriodSeconds=60)
    node = ecs.list_container_instances(cluster="prod")["containerInstanceArns"][0]
    now = time.time()
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        surges = RollSurges(aws, "prod", Metrics(), dry_run=False)
        await surges.read(["web"])
        assert await surges.raise_count("web", SurgeMark(4, 2, "i-0abc", now), "raise web")
        started = ecs.start_task(  # the four old tasks and the surge's two extra ones
            cluster="prod", taskDefinition="web", group="service:web", containerInstances=[node] * 6
        )["tasks"]
        ecs.run_task(cluster="prod", taskDefinition="web", group="family:web")  # not the service's
        for task in started[:4]:
            _report(task["taskArn"], "HEALTHY", now - 3600)
        for task in started[4:]:
            _report(task["taskArn"], "UNKNOWN", now)  # RUNNING, its checks not passed yet
        read = await surges.read(["web"])
        assert read is not None
        web = read["web"]
        assert web.tasks is not None and web.health == ServiceHealth(checked=True, grace=60.0)
        assert len(web.tasks) == 6
        assert healthy_count(web.tasks, web.health, now + 600) == 4  # running is not healthy
        for task in started[4:]:
            _report(task["taskArn"], "HEALTHY", now)
        web = (await surges.read(["web"]) or {})["web"]
        assert web.tasks is not None and healthy_count(web.tasks, web.health, now + 1) == 6
        assert await surges.set_back("web", 4, "set web back")
        unmarked = await surges.read(["web"])
        assert unmarked is not None and unmarked["web"].tasks is None  # read only while marked
