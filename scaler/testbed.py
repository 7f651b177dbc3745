"""A local AWS to run the scaler against: an embedded moto server, set up like a real account.

Used by ``scaler demo``, by the integration tests and by the benchmarks, so all three exercise the
real aiobotocore adapters over real HTTP. It creates what an operator's deployment would have: an
ECS cluster with registered container instances, the event queue with its dead-letter queue, and
an EventBridge rule routing the scaler's event types to the queue. Event builders produce the same
envelopes AWS sends (shapes taken from the example events in AWS's documentation).

moto is an optional dependency (the ``demo`` extra); it is imported only when a server starts.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"
EVENT_SOURCES = ("aws.ec2", "aws.autoscaling", "aws.health", "aws.ecs")

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def use_fake_credentials() -> None:
    """Point this process's AWS credential chain at dummy keys (a local endpoint needs some)."""
    for name, value in _FAKE_CREDENTIALS.items():
        os.environ[name] = value
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


class LocalAws:
    """An embedded moto server on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self, service: str) -> Any:
        """A synchronous boto3 client for setting things up and checking results."""
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def manual_task_states(aws: LocalAws) -> None:
    """Stop moto from moving a task one state toward STOPPED at every DescribeTasks call."""
    import urllib.request

    body = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}}
    request = urllib.request.Request(
        f"{aws.endpoint}/moto-api/state-manager/set-transition",
        data=json.dumps(body).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@contextmanager
def local_aws() -> Iterator[LocalAws]:
    use_fake_credentials()
    aws = LocalAws().start()
    try:
        yield aws
    finally:
        aws.stop()


@dataclass(frozen=True)
class Queues:
    url: str
    arn: str
    dlq_url: str


def create_queues(
    aws: LocalAws, name: str, *, max_receive: int = 3, visibility: int = 30
) -> Queues:
    """The event queue and its dead-letter queue, joined by a redrive policy."""
    sqs = aws.client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)})
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility)},
    )["QueueUrl"]
    return Queues(url=url, arn=_queue_arn(sqs, url), dlq_url=dlq_url)


def _queue_arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


def route_events(aws: LocalAws, queues: Queues, rule: str = "scaler-events") -> None:
    """An EventBridge rule sending every event type the scaler consumes to the queue."""
    events = aws.client("events")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": list(EVENT_SOURCES)}))
    events.put_targets(Rule=rule, Targets=[{"Id": "scaler", "Arn": queues.arn}])


@dataclass(frozen=True)
class Node:
    """An EC2 instance and, if registered, its container instance."""

    instance_id: str
    container_instance_arn: str | None
    az: str


_AMIS: dict[str, str] = {}  # endpoint -> its ECS-optimized image (moto's are built in)


def _ecs_ami(ec2: Any) -> str:
    endpoint = str(ec2.meta.endpoint_url)
    if endpoint not in _AMIS:  # a filtered DescribeImages takes moto a while: ask once
        images = ec2.describe_images(
            Owners=["amazon"],
            Filters=[{"Name": "name", "Values": ["amzn2-ami-ecs-hvm-*x86_64*"]}],
        )["Images"]
        _AMIS[endpoint] = str(images[0]["ImageId"]) if images else "ami-12c6146b"
    return _AMIS[endpoint]


def launch_instances(aws: LocalAws, count: int, az: str = "us-east-1a") -> list[str]:
    ec2 = aws.client("ec2")
    ids: list[str] = []
    while len(ids) < count:
        n = min(count - len(ids), 500)
        reply = ec2.run_instances(
            ImageId=_ecs_ami(ec2),
            MinCount=n,
            MaxCount=n,
            InstanceType="m5.large",
            Placement={"AvailabilityZone": az},
        )
        ids.extend(i["InstanceId"] for i in reply["Instances"])
    return ids


def register_instances(aws: LocalAws, cluster: str, instance_ids: list[str], az: str) -> list[Node]:
    ecs = aws.client("ecs")
    nodes = []
    for iid in instance_ids:
        document = json.dumps(
            {"instanceId": iid, "region": REGION, "availabilityZone": az, "accountId": ACCOUNT}
        )
        reply = ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)
        nodes.append(Node(iid, reply["containerInstance"]["containerInstanceArn"], az))
    return nodes


def create_cluster(aws: LocalAws, name: str, size: int, az: str = "us-east-1a") -> list[Node]:
    """An ECS cluster with ``size`` EC2 instances registered as container instances."""
    aws.client("ecs").create_cluster(clusterName=name)
    return register_instances(aws, name, launch_instances(aws, size, az), az)


# -- events, shaped like AWS's -------------------------------------------------------------


def _envelope(
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str],
    when: datetime | None,
    event_id: str | None,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def _cluster_arn(cluster: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"


def _instance_arn(instance_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"


def spot_warning(
    instance_id: str,
    when: datetime | None = None,
    event_id: str | None = None,
    action: str = "terminate",
) -> dict[str, Any]:
    detail = {"instance-id": instance_id, "instance-action": action}
    return _envelope(
        "aws.ec2",
        "EC2 Spot Instance Interruption Warning",
        detail,
        [_instance_arn(instance_id)],
        when,
        event_id,
    )


def rebalance_recommendation(
    instance_id: str, when: datetime | None = None, event_id: str | None = None
) -> dict[str, Any]:
    return _envelope(
        "aws.ec2",
        "EC2 Instance Rebalance Recommendation",
        {"instance-id": instance_id},
        [_instance_arn(instance_id)],
        when,
        event_id,
    )


def state_change(
    instance_id: str, state: str, when: datetime | None = None, event_id: str | None = None
) -> dict[str, Any]:
    return _envelope(
        "aws.ec2",
        "EC2 Instance State-change Notification",
        {"instance-id": instance_id, "state": state},
        [_instance_arn(instance_id)],
        when,
        event_id,
    )


def container_instance_change(
    cluster: str,
    container_instance_arn: str,
    instance_id: str,
    status: str = "ACTIVE",
    version: int = 2,
    when: datetime | None = None,
) -> dict[str, Any]:
    """What ECS sends when a container instance changes (a task placed on it or stopped, its
    status, its agent): moto sends none, so a test that changes an instance sends it."""
    detail = {
        "agentConnected": True,
        "clusterArn": _cluster_arn(cluster),
        "containerInstanceArn": container_instance_arn,
        "ec2InstanceId": instance_id,
        "status": status,
        "version": version,
    }
    return _envelope(
        "aws.ecs",
        "ECS Container Instance State Change",
        detail,
        [container_instance_arn],
        when,
        None,
    )


def placement_failure(
    cluster: str,
    service: str,
    reason: str = "RESOURCE:CPU",
    when: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """What ECS sends when its service scheduler cannot place a service's task (an ``ECS
    Service Action`` event): moto sends none."""
    moment = when or datetime.now(UTC)
    detail = {
        "eventType": "ERROR",
        "eventName": "SERVICE_TASK_PLACEMENT_FAILURE",
        "clusterArn": _cluster_arn(cluster),
        "containerInstanceArns": [],
        "reason": reason,
        "createdAt": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    service_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}"
    return _envelope("aws.ecs", "ECS Service Action", detail, [service_arn], moment, event_id)


def lifecycle_terminate(
    instance_id: str,
    group: str,
    token: str | None = None,
    hook: str = "scaler-drain",
    when: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    detail = {
        "LifecycleActionToken": token or str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "LifecycleHookName": hook,
        "EC2InstanceId": instance_id,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
    }
    arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:x:autoScalingGroupName/{group}"
    return _envelope(
        "aws.autoscaling", "EC2 Instance-terminate Lifecycle Action", detail, [arn], when, event_id
    )


def scheduled_change(
    instance_id: str,
    start: datetime,
    when: datetime | None = None,
    event_id: str | None = None,
    *,
    end: datetime | None = None,
    code: str = "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
) -> dict[str, Any]:
    detail = {
        "eventArn": f"arn:aws:health:{REGION}::event/EC2/{uuid.uuid4()}",
        "service": "EC2",
        "eventTypeCode": code,
        "eventTypeCategory": "scheduledChange",
        "startTime": start.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "affectedEntities": [{"entityValue": instance_id}],
    }
    if end is not None:
        detail["endTime"] = end.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return _envelope("aws.health", "AWS Health Event", detail, [instance_id], when, event_id)


def put_events(aws: LocalAws, events: list[dict[str, Any]]) -> None:
    """Publish events through EventBridge, as AWS would (10 entries a call)."""
    client = aws.client("events")
    for i in range(0, len(events), 10):
        entries = [
            {
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
                "Resources": e["resources"],
            }
            for e in events[i : i + 10]
        ]
        client.put_events(Entries=entries)


def send_raw(aws: LocalAws, queue_url: str, bodies: list[str]) -> list[str]:
    """Put bodies straight on the queue (for duplicates and malformed messages); their
    message ids, in order."""
    sqs = aws.client("sqs")
    ids: list[str] = []
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])]
        reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent = {int(e["Id"]): str(e["MessageId"]) for e in reply.get("Successful", [])}
        ids += [sent[j] for j in sorted(sent)]
    return ids


def queue_depth(aws: LocalAws, queue_url: str) -> int:
    """Messages on the queue: visible, in flight and delayed."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(attrs["Attributes"].get(name, 0)) for name in names)


def container_instance_states(aws: LocalAws, cluster: str) -> dict[str, str]:
    """EC2 instance id -> container instance status."""
    ecs = aws.client("ecs")
    arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    states: dict[str, str] = {}
    for i in range(0, len(arns), 100):
        described = ecs.describe_container_instances(
            cluster=cluster, containerInstances=arns[i : i + 100]
        )
        for ci in described["containerInstances"]:
            states[ci["ec2InstanceId"]] = ci["status"]
    return states


def create_group(
    aws: LocalAws,
    name: str,
    instance_type: str,
    azs: list[str],
    *,
    max_size: int = 10,
    instance_ids: list[str] | None = None,
) -> None:
    """An Auto Scaling group launching ``instance_type`` from a launch template in ``azs``,
    holding ``instance_ids`` (already running) or nothing."""
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={"ImageId": _ecs_ami(ec2), "InstanceType": instance_type},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
        MinSize=0,
        MaxSize=max_size,
        DesiredCapacity=0,
        AvailabilityZones=azs,
    )
    if instance_ids:
        asg.attach_instances(AutoScalingGroupName=name, InstanceIds=instance_ids)
