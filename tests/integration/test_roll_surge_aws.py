"""The roll's surge adapter against moto over HTTP: it reads a service's deployment bounds and
its mark, marks before it raises, sets back and unmarks, and changes nothing without the lease."""

from __future__ import annotations

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.surges import ROLL_TAG, RollSurges
from scaler.metrics import Metrics
from scaler.plan.roll import SurgeMark


class Lost:
    def holds(self) -> bool:
        return False


def _service(aws: testbed.LocalAws) -> str:
    testbed.create_cluster(aws, "prod", size=1)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 256, "memory": 256}],
    )
    arn: str = ecs.create_service(
        cluster="prod", serviceName="web", taskDefinition="web", desiredCount=4
    )["service"]["serviceArn"]
    ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150},
    )
    return arn


def _state(aws: testbed.LocalAws, arn: str) -> tuple[int, dict[str, str]]:
    ecs = aws.client("ecs")
    desired = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
    return int(desired["desiredCount"]), {t["key"]: t["value"] for t in tags}


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
        assert _state(local_aws, arn) == (6, {ROLL_TAG: "4 2 i-0abc 1000"})
        again = await RollSurges(aws, "prod", Metrics(), dry_run=False).read(["web"])
        assert again is not None and again["web"].mark == mark  # what a new leader finds
        assert await surges.set_back("web", 4, "set web back")
        assert _state(local_aws, arn) == (4, {})


async def test_a_count_changed_meanwhile_is_left_and_unmarked(local_aws: testbed.LocalAws) -> None:
    arn = _service(local_aws)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        surges = RollSurges(aws, "prod", Metrics(), dry_run=False)
        await surges.read(["web"])
        assert await surges.raise_count("web", SurgeMark(4, 2, "i-0abc", 1000.0), "raise web")
        local_aws.client("ecs").update_service(cluster="prod", service="web", desiredCount=9)
        assert await surges.set_back("web", None, "unmark web")
        assert _state(local_aws, arn) == (9, {})


async def test_nothing_changes_without_the_lease(local_aws: testbed.LocalAws) -> None:
    arn = _service(local_aws)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        surges = RollSurges(aws, "prod", metrics, dry_run=False)
        surges.leader = Lost()
        await surges.read(["web"])
        assert not await surges.raise_count("web", SurgeMark(4, 2, "i-0abc", 1000.0), "raise")
        assert _state(local_aws, arn) == (4, {})
    labels = {"action": "roll_surge", "reason": "web", "outcome": "not_leader"}
    assert metrics.registry.get_sample_value("scaler_actions_total", labels) == 1
