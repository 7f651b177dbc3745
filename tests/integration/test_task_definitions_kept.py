"""Task definitions read once: a revision never changes, so readers that read the live cluster
again (consolidation, the rebalancer, the advice) keep what they read, against moto over HTTP."""

from __future__ import annotations

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.live import live_cluster
from scaler.aws.services import Definitions, read_services
from scaler.demo import aws_calls
from scaler.metrics import Metrics


def _services(aws: testbed.LocalAws, revisions: int) -> None:
    """Service ``web`` on the last of ``revisions`` revisions of ``web``; ``api`` on ``api:1``."""
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="prod")
    for family, count in (("web", revisions), ("api", 1)):
        for _ in range(count):
            ecs.register_task_definition(
                family=family,
                containerDefinitions=[{"name": "app", "image": "x", "cpu": 256, "memory": 512}],
            )
        ecs.create_service(
            cluster="prod", serviceName=family, taskDefinition=family, desiredCount=1
        )


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


async def test_each_revision_is_described_once_and_a_new_one_when_deployed(
    local_aws: testbed.LocalAws,
) -> None:
    _services(local_aws, revisions=1)
    metrics = Metrics()
    kept = Definitions()
    async with AwsClients(_target(local_aws), metrics) as aws:
        for _ in range(3):
            specs = await read_services(aws.ecs, "prod", [], definitions=kept)
            assert {s.name: s.cpu for s in specs} == {"api": 256, "web": 256}
        assert aws_calls(metrics)["ecs:DescribeTaskDefinition"] == 2
        local_aws.client("ecs").register_task_definition(
            family="web",
            containerDefinitions=[{"name": "app", "image": "x", "cpu": 512, "memory": 512}],
        )
        local_aws.client("ecs").update_service(cluster="prod", service="web", taskDefinition="web")
        specs = await read_services(aws.ecs, "prod", [], definitions=kept)
    assert {s.name: s.cpu for s in specs} == {"api": 256, "web": 512}, "the new revision read"
    assert aws_calls(metrics)["ecs:DescribeTaskDefinition"] == 3


async def test_only_the_last_used_are_kept(local_aws: testbed.LocalAws) -> None:
    _services(local_aws, revisions=1)
    metrics = Metrics()
    kept = Definitions(keep=1)
    async with AwsClients(_target(local_aws), metrics) as aws:
        for _ in range(2):
            await read_services(aws.ecs, "prod", [], definitions=kept)
    # api:1 and web:1 read, web:1 (used last) kept; then api:1 read again
    assert aws_calls(metrics)["ecs:DescribeTaskDefinition"] == 3


async def test_the_live_cluster_describes_its_services_once(local_aws: testbed.LocalAws) -> None:
    _services(local_aws, revisions=2)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        live = await live_cluster(aws, "prod", Definitions())
    assert sorted(live.model.services) == ["api", "web"]
    calls = aws_calls(metrics)
    assert calls["ecs:DescribeServices"] == 1
    assert calls["ecs:DescribeTaskDefinition"] == 2
