"""A whole scaler (clients, directory, handler, intake) against moto with a mixed burst."""

from __future__ import annotations

import asyncio

from scaler import testbed
from scaler.aws.errors import AwsFailure
from scaler.demo import aws_calls, make_burst, run_until
from tests.integration.helpers import outcomes, scaler_for, settings_for


async def test_mixed_burst_gets_the_right_outcome_for_every_message(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=30)
    other = testbed.create_cluster(local_aws, "other", size=5, az="us-east-1b")
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    testbed.route_events(local_aws, queues)
    members = [n.instance_id for n in nodes[:20]]
    strangers = [n.instance_id for n in other] + testbed.launch_instances(local_aws, 3)
    burst = make_burst(members, strangers, duplicates=5, malformed=4, max_receive=2)
    testbed.put_events(local_aws, burst.published)
    testbed.send_raw(local_aws, queues.url, burst.raw)

    scaler = scaler_for(local_aws, settings_for(queues.url, concurrency=25))

    def done() -> bool:
        settled = outcomes(scaler.metrics) == burst.expected
        return settled and testbed.queue_depth(local_aws, queues.dlq_url) == burst.malformed

    assert await run_until(scaler, done, limit=30)
    assert outcomes(scaler.metrics) == {
        "handled": 25,
        "duplicate": 5,
        "other_cluster": 8,
        "ignored": 1,
        "malformed": 8,
    }
    assert testbed.queue_depth(local_aws, queues.url) == 0
    calls = aws_calls(scaler.metrics)
    # one directory refresh answers the whole burst: a list page and one describe
    assert calls["ecs:ListContainerInstances"] <= 2
    assert calls["ecs:DescribeContainerInstances"] <= 2


async def test_unknown_queue_is_refused_naming_the_variable(local_aws: testbed.LocalAws) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    url = f"{local_aws.endpoint}/123456789012/missing"
    scaler = scaler_for(local_aws, settings_for(url))
    try:
        await asyncio.wait_for(scaler.run(asyncio.Event()), timeout=10)
    except AwsFailure as exc:
        assert exc.problem.line.startswith(f"SCALER_QUEUE_URL: queue {url} does not exist; ")
    else:
        raise AssertionError("a missing queue must be refused")


async def test_unknown_cluster_is_refused_naming_the_variable(local_aws: testbed.LocalAws) -> None:
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, settings_for(queues.url, cluster="nope"))
    try:
        await asyncio.wait_for(scaler.run(asyncio.Event()), timeout=10)
    except AwsFailure as exc:
        assert exc.problem.what == "SCALER_CLUSTER: cluster 'nope' not found in us-east-1"
    else:
        raise AssertionError("a missing cluster must be refused")
