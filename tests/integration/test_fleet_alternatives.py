"""A template pool out of capacity: the plan's other spot pools are asked in the same cycle, and
the next plan is made at once (against moto over HTTP; EC2's first answer is a shortfall)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from scaler import testbed
from scaler.aws.templates import POOL
from scaler.demo import run_until
from scaler.loop import Scaler
from tests.integration.faults import _Response
from tests.integration.helpers import scaler_for, settings_for


@dataclass
class ShortFirst:
    """Answer the first ``CreateFleet`` as EC2 does when its pools have no spot capacity:
    nothing launched, an error per pool; let the later ones through."""

    asked: list[tuple[str, int]] = field(default_factory=list)  # (pool, capacity cycle)
    scaler: Scaler | None = None

    def __call__(self, service: str, client: Any) -> None:
        if service == "ec2":
            client.meta.events.register("before-parameter-build.*.CreateFleet", self._note)
            client.meta.events.register("before-call.*.CreateFleet", self._answer)

    def _note(self, params: dict[str, Any], **_: Any) -> None:
        tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
        cycle = self.scaler.capacity.cycles if self.scaler and self.scaler.capacity else -1
        self.asked.append((tags[POOL], cycle))

    def _answer(self, **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        if len(self.asked) > 1:
            return None
        error = {"ErrorCode": "InsufficientInstanceCapacity", "ErrorMessage": "no capacity"}
        reply = {"FleetId": "fleet-0short", "Instances": [], "Errors": [error]}
        return _Response(200), {**reply, "ResponseMetadata": {"HTTPStatusCode": 200}}


def _template(aws: testbed.LocalAws, name: str) -> None:
    ec2 = aws.client("ec2")
    ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )


async def test_a_short_pool_is_followed_by_its_alternative_in_the_same_cycle(
    local_aws: testbed.LocalAws,
) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    _template(local_aws, "first-lt")
    _template(local_aws, "second-lt")
    # an instance of no pool holds the service's tasks, and is interrupted
    doomed = testbed.register_instances(
        local_aws, "prod", testbed.launch_instances(local_aws, 1), "us-east-1a"
    )[0]
    testbed.manual_task_states(local_aws)
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=2)
    for _ in range(2):
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[str(doomed.container_instance_arn)],
        )
    queues = testbed.create_queues(local_aws, "events")
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning(doomed.instance_id))])
    settings = settings_for(
        queues.url,
        spot_templates="spot-a=first-lt,spot-b=second-lt",
        fleet_instance_types="m5.large",
        capacity_interval=0.3,
        headroom=0.0,
    )
    short = ShortFirst()
    scaler = Scaler(settings, scaler_for(local_aws, settings).target, instrument=short)
    short.scaler = scaler
    ok = await run_until(scaler, lambda: len(short.asked) >= 2, limit=8)
    plan = scaler.capacity.last_plan if scaler.capacity else None
    assert ok, (short.asked, plan)
    (first, first_cycle), (second, second_cycle) = short.asked[:2]
    assert (first, second) == ("spot-a", "spot-b")
    assert first_cycle == second_cycle, "the alternative is asked in the same cycle"
