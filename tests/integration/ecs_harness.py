"""What ECS and its agent would do that moto does not, for tests that scale a cluster in and out.

moto has no ECS scheduler and no agent: instances an Auto Scaling group launches never register,
tasks on a draining instance never move, and a terminated instance's container instance stays.
:class:`Ecs` plays those parts, one ``tick()`` at a time.

moto also stops a task at once. In ECS a stopped task behind a load balancer stays DEACTIVATING
(then STOPPING) for the target group's deregistration delay (300 s by default) while it drains
its connections; its desired status is STOPPED at once, so the container instance's
``runningTasksCount`` (and ``pendingTasksCount``) no longer count it. With
``deregistration_delay`` the harness does the same for the tasks it moves off a draining instance
(setting the task's status in moto's in-process backend, which its API cannot), and records in
``cut_short`` every instance terminated while such a task was still on it.

Capacity providers: an instance of a group that is a capacity provider's registers with the
``ecs.capacity-provider-name`` attribute, as ECS sets it, and a task of a service with a capacity
provider strategy moves only to instances of its providers (none there: it waits, as ECS keeps it
PROVISIONING).
"""

from __future__ import annotations

import time
from typing import Any

from scaler import testbed


class Ecs:
    def __init__(
        self,
        aws: testbed.LocalAws,
        cluster: str = "prod",
        az: str = "us-east-1a",
        deregistration_delay: float = 0.0,
    ):
        self.aws = aws
        self.cluster = cluster
        self.az = az
        self.ecs = aws.client("ecs")
        self.ec2 = aws.client("ec2")
        self.registered: set[str] = set()
        self.deregistration_delay = deregistration_delay  # seconds a stopped task drains
        self.stopping: dict[str, tuple[str, float]] = {}  # task ARN -> (instance ARN, stops at)
        self.cut_short: list[str] = []  # instances terminated under a task still draining

    def tick(self, groups: tuple[str, ...] = ()) -> None:
        """Register the groups' new instances, move tasks off draining instances (to the active
        instance with the fewest), and deregister instances EC2 terminated."""
        self.register(groups)
        self._finish_stopping()
        described = self._instances()
        active = [ci for ci in described if ci["status"] == "ACTIVE"]
        bound = self._bound()
        for ci in described:
            if ci["status"] != "DRAINING":
                continue
            if self._terminated(ci["ec2InstanceId"]):
                arn = ci["containerInstanceArn"]
                if any(on == arn for on, _ in self.stopping.values()):
                    self.cut_short.append(ci["ec2InstanceId"])
                self.ecs.deregister_container_instance(
                    cluster=self.cluster, containerInstance=ci["containerInstanceArn"], force=True
                )
                continue
            for task in self.tasks_on(ci["containerInstanceArn"]):
                providers = bound.get(str(task.get("group", "")), set())
                allowed = [c for c in active if not providers or provider(c) in providers]
                if not allowed:
                    continue  # no instance of its providers: it waits for one
                target = min(allowed, key=lambda c: len(self.tasks_on(c["containerInstanceArn"])))
                self.ecs.start_task(
                    cluster=self.cluster,
                    taskDefinition=task["taskDefinitionArn"],
                    group=task["group"],
                    containerInstances=[target["containerInstanceArn"]],
                )
                self.ecs.stop_task(cluster=self.cluster, task=task["taskArn"], reason="draining")
                if self.deregistration_delay > 0:
                    self._deactivate(task["taskArn"], ci["containerInstanceArn"])

    def _deactivate(self, task_arn: str, instance_arn: str) -> None:
        """Keep a stopped task DEACTIVATING (desired STOPPED) for the deregistration delay."""
        _moto_task(self.cluster, task_arn).last_status = "DEACTIVATING"
        self.stopping[task_arn] = (instance_arn, time.monotonic() + self.deregistration_delay)

    def _finish_stopping(self) -> None:
        """Tasks whose deregistration delay is over stop (STOPPING first, for one tick)."""
        now = time.monotonic()
        for task_arn, (_, stops_at) in list(self.stopping.items()):
            task = _moto_task(self.cluster, task_arn)
            if now < stops_at:
                continue
            if task.last_status == "DEACTIVATING":
                task.last_status = "STOPPING"
            else:
                task.last_status = "STOPPED"
                del self.stopping[task_arn]

    def register(self, groups: tuple[str, ...]) -> None:
        if not groups:
            return
        reply = self.aws.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=list(groups)
        )
        providers = self._providers()
        for group in reply["AutoScalingGroups"]:
            self.register_instances(
                [i["InstanceId"] for i in group["Instances"]],
                providers.get(group["AutoScalingGroupARN"], ""),
            )

    def register_instances(self, ids: list[str], provider: str = "") -> None:
        """Register those of ``ids`` not registered yet, as their agents would (instances of a
        capacity provider's group with its name as an attribute, as ECS sets it)."""
        fresh = [i for i in ids if i not in self.registered]
        nodes = testbed.register_instances(self.aws, self.cluster, fresh, self.az)
        if provider:
            for node in nodes:
                assert node.container_instance_arn is not None
                set_provider(self.aws, self.cluster, node.container_instance_arn, provider)
        self.registered |= set(fresh)

    def _providers(self) -> dict[str, str]:
        """Auto Scaling group ARN -> the cluster's capacity provider that is that group."""
        cluster = self.ecs.describe_clusters(clusters=[self.cluster])["clusters"][0]
        names = [n for n in cluster.get("capacityProviders") or [] if not n.startswith("FARGATE")]
        if not names:
            return {}
        described = self.ecs.describe_capacity_providers(capacityProviders=names)
        return {
            p["autoScalingGroupProvider"]["autoScalingGroupArn"]: p["name"]
            for p in described["capacityProviders"]
        }

    def _bound(self) -> dict[str, set[str]]:
        """Task group (``service:NAME``) -> the capacity providers its service may use."""
        arns = self.ecs.list_services(cluster=self.cluster)["serviceArns"]
        bound: dict[str, set[str]] = {}
        for i in range(0, len(arns), 10):
            for svc in self.ecs.describe_services(cluster=self.cluster, services=arns[i : i + 10])[
                "services"
            ]:
                strategy = svc.get("capacityProviderStrategy") or []
                bound[f"service:{svc['serviceName']}"] = {s["capacityProvider"] for s in strategy}
        return bound

    def tasks_on(self, arn: str) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
        if not arns:
            return []
        tasks = self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"]
        return [
            t for t in tasks if t["containerInstanceArn"] == arn and t["lastStatus"] == "RUNNING"
        ]

    def interrupt(self, iid: str, replace: bool) -> None:
        """A spot storm reclaims ``iid``: EC2 terminates it. A group that replaces what it loses,
        as Auto Scaling does, launches another at once to keep its desired capacity; with
        ``replace`` False the group just loses it, its desired capacity unchanged (moto's way
        with an instance EC2 terminates under it, but without listing it on)."""
        if replace:
            self.aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=iid, ShouldDecrementDesiredCapacity=False
            )
            return
        for group in _moto_groups().values():
            group.instance_states = [s for s in group.instance_states if s.instance.id != iid]
        self.ec2.terminate_instances(InstanceIds=[iid])

    def _instances(self) -> list[dict[str, Any]]:
        arns = self.ecs.list_container_instances(cluster=self.cluster)["containerInstanceArns"]
        if not arns:
            return []
        reply = self.ecs.describe_container_instances(cluster=self.cluster, containerInstances=arns)
        return list(reply["containerInstances"])

    def _terminated(self, iid: str) -> bool:
        reply = self.ec2.describe_instances(InstanceIds=[iid])
        state = reply["Reservations"][0]["Instances"][0]["State"]["Name"]
        return state in ("shutting-down", "terminated")


def provider(ci: dict[str, Any]) -> str:
    """The capacity provider a described container instance belongs to ("": none)."""
    for attr in ci.get("attributes", []):
        if attr.get("name") == "ecs.capacity-provider-name":
            return str(attr.get("value", ""))
    return ""


def set_provider(aws: testbed.LocalAws, cluster: str, instance_arn: str, name: str) -> None:
    """Mark a container instance as the capacity provider ``name``'s, as ECS does (moto takes
    the container instance's id, not its ARN, as the target)."""
    aws.client("ecs").put_attributes(
        cluster=cluster,
        attributes=[
            {
                "name": "ecs.capacity-provider-name",
                "value": name,
                "targetType": "container-instance",
                "targetId": instance_arn.rsplit("/", 1)[-1],
            }
        ],
    )


def _moto_task(cluster: str, task_arn: str) -> Any:
    """moto's own record of a task (the server runs in this process)."""
    from moto.ecs.models import ecs_backends

    return ecs_backends[testbed.ACCOUNT][testbed.REGION].tasks[cluster][task_arn]


def _moto_groups() -> dict[str, Any]:
    """moto's own Auto Scaling groups (the server runs in this process)."""
    from moto.autoscaling.models import autoscaling_backends

    return dict(autoscaling_backends[testbed.ACCOUNT][testbed.REGION].autoscaling_groups)
