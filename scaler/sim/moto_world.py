"""Make an embedded moto server's ECS behave like ECS, by mirroring the simulator's model into it.

moto stores ECS state but never schedules, drains or replaces anything. :class:`MotoWorld` is the
simulator's :class:`~scaler.sim.engine.World`: every change of the model is replayed into moto
(instances launched and registered, tasks started on the container instance the model's scheduler
chose, tasks stopped, instances terminated), and every container instance the *scaler* set to
DRAINING in moto is drained in the model, whose scheduler then moves the tasks. Spot notices reach
the scaler the way AWS sends them: through EventBridge into its SQS queue.

Auto Scaling groups (:meth:`MotoWorld.add_group`) are mirrored the other way too: an instance a
group launches in moto (the scaler raised its desired capacity) boots and registers in the model,
in the model's pool of the same capacity and AZ; one that leaves its group in moto (the scaler
terminated it) is terminated in the model. An instance the model loses at the end of its spot
notice leaves its group with the desired capacity lowered (the pool has no spot to replace it).

The result: the real scaler, over real HTTP, against an AWS whose ECS drains and replaces tasks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from scaler import testbed
from scaler.ecs.cluster import ACTIVE, Instance, ServiceState, Task
from scaler.events import InstanceStateChange, RebalanceRecommendation, Signal, SpotInterruption
from scaler.sim.engine import Sim
from scaler.sim.scenario import Pool


class MotoWorld:
    def __init__(self, aws: testbed.LocalAws, cluster: str, say: Callable[[str], None]) -> None:
        self.aws = aws
        self.cluster = cluster
        self._say = say
        self._ec2 = aws.client("ec2")
        self._ecs = aws.client("ecs")
        self._events = aws.client("events")
        self._autoscaling = aws.client("autoscaling")
        self._ami = testbed._ecs_ami(self._ec2)
        self.container_instances: dict[str, str] = {}  # EC2 id -> container instance ARN
        self.tasks: dict[str, str] = {}  # model task id -> moto task ARN
        self.warned_at: dict[str, float] = {}
        self.started = time.monotonic()
        self.storm_started: float | None = None
        self.groups: dict[str, str] = {}  # Auto Scaling group -> "spot" | "on-demand"
        self.member: dict[str, str] = {}  # EC2 id -> its group
        self._arriving: dict[str, list[str]] = {}  # model pool -> ids a group launched
        self.given_back: set[str] = set()  # instances the scaler terminated

    def say(self, text: str) -> None:
        self._say(f"t+{time.monotonic() - self.started:5.1f}s  {text}")

    # -- World ------------------------------------------------------------------------------

    def new_instance_id(self, pool: Pool) -> str | None:
        arriving = self._arriving.get(pool.name)
        if arriving:
            return arriving.pop(0)
        reply = self._ec2.run_instances(
            ImageId=self._ami,
            MinCount=1,
            MaxCount=1,
            InstanceType=pool.instance_type,
            Placement={"AvailabilityZone": pool.az},
        )
        return str(reply["Instances"][0]["InstanceId"])

    def mirror(self, kind: str, obj: object) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(obj)

    def _on_service(self, state: ServiceState) -> None:
        spec = state.spec
        self._ecs.register_task_definition(
            family=spec.name,
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "public.ecr.aws/demo/app",
                    "cpu": spec.cpu,
                    "memory": spec.memory,
                }
            ],
        )
        self._ecs.create_service(
            cluster=self.cluster,
            serviceName=spec.name,
            taskDefinition=spec.name,
            desiredCount=spec.desired,
        )
        self._ecs.update_service(
            cluster=self.cluster,
            service=spec.name,
            deploymentConfiguration={
                "minimumHealthyPercent": spec.min_healthy_percent,
                "maximumPercent": spec.max_percent,
            },
        )

    def _on_register(self, inst: Instance) -> None:
        document = json.dumps(
            {
                "instanceId": inst.id,
                "region": testbed.REGION,
                "availabilityZone": inst.az,
                "accountId": testbed.ACCOUNT,
            }
        )
        reply = self._ecs.register_container_instance(
            cluster=self.cluster, instanceIdentityDocument=document
        )
        self.container_instances[inst.id] = reply["containerInstance"]["containerInstanceArn"]
        if self.storm_started is not None:
            self.say(f"{inst.id} registered in {inst.az}")

    def _on_start(self, task: Task) -> None:
        if task.instance is None:
            return
        reply = self._ecs.start_task(
            cluster=self.cluster,
            taskDefinition=task.service.name,
            containerInstances=[self.container_instances[task.instance.id]],
            group=f"service:{task.service.name}",
            startedBy="ecs-svc/model",
        )
        if reply["tasks"]:
            self.tasks[task.id] = reply["tasks"][0]["taskArn"]

    def _on_running(self, task: Task) -> None:
        if self.storm_started is not None and task.instance is not None:
            self.say(f"{task.service.name}: replacement task RUNNING on {task.instance.id}")

    def _on_stop(self, change: tuple[Task, str]) -> None:
        task, reason = change
        arn = self.tasks.pop(task.id, None)
        if arn:
            self._ecs.stop_task(cluster=self.cluster, task=arn, reason=reason)
        if reason == "drained" and task.instance is not None:
            self.say(f"{task.service.name}: task stopped on draining {task.instance.id}")
        elif reason == "instance-terminated" and task.instance is not None:
            self.say(f"{task.service.name}: task LOST with {task.instance.id}")

    def _on_terminate(self, inst: Instance) -> None:
        if inst.id in self.given_back:
            self.say(f"{inst.id} terminated by the scaler ({self.member.pop(inst.id, '')})")
            return
        group = self.member.pop(inst.id, None)
        if group is None:
            self._ec2.terminate_instances(InstanceIds=[inst.id])
        else:
            self._autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=inst.id, ShouldDecrementDesiredCapacity=True
            )
        self.say(f"{inst.id} terminated (notice over)")

    # -- Auto Scaling groups ------------------------------------------------------------------

    def add_group(
        self, sim: Sim, name: str, capacity: str, instance_type: str, azs: list[str]
    ) -> None:
        """An Auto Scaling group of ``capacity`` in ``azs``, holding the model's instances of
        that capacity there (those :meth:`Sim.begin` launched)."""
        mine = [
            i.id
            for i in sim.cluster.instances.values()
            if i.capacity == capacity and i.az in azs and i.id not in self.member
        ]
        testbed.create_group(self.aws, name, instance_type, azs, instance_ids=mine)
        self.groups[name] = capacity
        self.member.update(dict.fromkeys(mine, name))

    def sync_groups(self, sim: Sim) -> None:
        """Boot in the model what the groups launched; terminate what left them."""
        if not self.groups:
            return
        reply = self._autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=list(self.groups)
        )
        for group in reply["AutoScalingGroups"]:
            name = group["AutoScalingGroupName"]
            listed = {i["InstanceId"]: i["AvailabilityZone"] for i in group.get("Instances", [])}
            for iid, az in listed.items():
                if iid not in self.member:
                    self._adopt(sim, name, iid, az)
            for iid in [i for i, g in self.member.items() if g == name and i not in listed]:
                inst = sim.instance(iid)
                if inst is not None:
                    self.given_back.add(iid)
                    sim.terminate(inst)

    def _adopt(self, sim: Sim, group: str, iid: str, az: str) -> None:
        capacity = self.groups[group]
        pool = next((p for p in sim.pools.values() if p.capacity == capacity and p.az == az), None)
        self.member[iid] = group
        if pool is None:
            self.say(f"{iid} launched by {group} in {az}, where the model has no pool: ignored")
            return
        self._arriving.setdefault(pool.name, []).append(iid)
        if sim.launch(pool.name, 1, "group") == 0:
            self._arriving[pool.name].remove(iid)
            self.say(f"{iid} launched by {group} in {az}, which has no {capacity} capacity")
            return
        self.say(f"{iid} launched by {group} ({capacity}, {az}); booting")

    # -- the scaler's side ------------------------------------------------------------------

    def sync_draining(self, sim: Sim) -> None:
        """Drain in the model every container instance the scaler set DRAINING in moto."""
        arns = list(self.container_instances.values())
        by_arn = {arn: iid for iid, arn in self.container_instances.items()}
        for i in range(0, len(arns), 100):
            reply = self._ecs.describe_container_instances(
                cluster=self.cluster, containerInstances=arns[i : i + 100]
            )
            for ci in reply["containerInstances"]:
                inst = sim.instance(by_arn.get(ci["containerInstanceArn"], ""))
                if ci["status"] == "DRAINING" and inst is not None and inst.status == ACTIVE:
                    sim.cluster.drain(inst)
                    self.say(f"{inst.id} DRAINING ({self._why_draining(inst.id)})")

    def _why_draining(self, iid: str) -> str:
        if iid in self.warned_at:
            since = time.monotonic() - self.warned_at[iid]
            return f"set by the scaler {since:.1f}s after the warning"
        group = self.member.get(iid)
        where = f"; {group}'s {self.groups[group]} instance" if group else ""
        return f"set by the scaler by its own choice, no notice{where}"

    def publish(self, signal: Signal) -> None:
        """Send a signal through EventBridge, as AWS would, stamped with the time it is sent
        (the scaler's clock is the real one, not the model's)."""
        now = datetime.now(UTC)
        if isinstance(signal, SpotInterruption):
            event = testbed.spot_warning(signal.instance_id, now)
            self.warned_at[signal.instance_id] = time.monotonic()
            self.storm_started = self.storm_started or time.monotonic()
            self.say(f"spot interruption warning for {signal.instance_id}")
        elif isinstance(signal, RebalanceRecommendation):
            event = testbed.rebalance_recommendation(signal.instance_id, now)
        elif isinstance(signal, InstanceStateChange):
            event = testbed.state_change(signal.instance_id, signal.state, now)
        else:
            return
        testbed.put_events(self.aws, [event])


class Bridge:
    """The simulator's policy in the demo: it only forwards signals into EventBridge; the real
    scaler, reading the queue, is the one that acts."""

    name = "bridge"

    def __init__(self, world: MotoWorld) -> None:
        self.world = world

    def start(self, sim: Sim) -> None:
        pass

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        self.world.publish(signal)
