"""The mutable state of a simulated ECS cluster: instances, services and tasks.

Instances move ``launching -> ACTIVE -> DRAINING -> terminated``; tasks move
``PENDING -> RUNNING`` (healthy once their health delay has passed) ``-> STOPPED``. A task of a
service behind a load balancer with a deregistration delay goes ``RUNNING -> DEACTIVATING`` when
stopped: no longer its service's (not running, not healthy) but still on its instance, holding
its reservation, until :meth:`Cluster.finish_stop` makes it STOPPED once the delay has passed.

A *daemon* service (``ServiceSpec.scheduling == DAEMON``) runs one task on every ACTIVE instance
it may use; its desired count is not a demand (see :mod:`scaler.ecs.scheduler`).

An instance registers with its type's CPU and its type's memory less what the ECS agent
reserves (``reserved_memory``, as ``ECS_RESERVED_MEMORY``): placement sees the registered sizes.

Every change goes through a method here so the indexes (tasks per instance, per service, per AZ;
free resources; modelled CPU use) stay consistent and observers (the accountant) hear about it.

An instance may belong to a capacity provider (``Instance.provider``, as ECS's
``ecs.capacity-provider-name`` attribute names it); a service whose capacity provider strategy
names EC2 providers (``ServiceSpec.capacity_providers``) may be placed only on their instances,
a restriction that placement checks like a ``memberOf`` constraint.

Time is a float of seconds handed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

LAUNCHING, ACTIVE, DRAINING, TERMINATED = "launching", "ACTIVE", "DRAINING", "terminated"
PENDING, RUNNING, STOPPED = "PENDING", "RUNNING", "STOPPED"
DEACTIVATING = "DEACTIVATING"  # stopped, but still deregistering from its load balancer
REPLICA, DAEMON = "replica", "daemon"  # service scheduling strategies
FARGATE = "fargate"
PROVIDER_ATTRIBUTE = "attribute:ecs.capacity-provider-name"


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: int
    memory_mib: int
    on_demand_price: float  # USD per hour

    @property
    def cpu_units(self) -> int:
        return self.vcpu * 1024


@dataclass(frozen=True)
class Strategy:
    """A placement strategy: ``binpack`` (cpu|memory), ``spread`` (an attribute), ``random``."""

    type: str
    field: str = ""


@dataclass(frozen=True)
class Constraint:
    """``distinctInstance``, or ``memberOf`` with an expression such as
    ``attribute:ecs.instance-type == m5.large`` or ``attribute:ecs.availability-zone in [a, b]``."""

    type: str
    expression: str = ""


DEFAULT_STRATEGY = (Strategy("spread", "attribute:ecs.availability-zone"),)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    desired: int
    cpu: int
    memory: int
    min_healthy_percent: int = 100
    max_percent: int = 200
    strategies: tuple[Strategy, ...] = DEFAULT_STRATEGY
    constraints: tuple[Constraint, ...] = ()
    cpu_use: float = 0.5  # modelled actual CPU use, as a share of the reservation
    start_delay: float = 20.0  # seconds from placement to RUNNING (image pull + start)
    health_delay: float = 40.0  # seconds from RUNNING to counting as healthy
    fargate_overflow: bool = False  # its operator allows overflow to Fargate (a companion service)
    launch_type: str = "EC2"  # or "FARGATE"
    overflow_of: str | None = None  # a Fargate companion of this EC2 service: its tasks count there
    az_rebalancing: bool = True  # ECS AZ rebalancing (applies when the first strategy is AZ spread)
    # its capacity provider strategy's (EC2) providers: only their instances may hold its tasks
    # (none: any instance, as with launch type EC2)
    capacity_providers: tuple[str, ...] = ()
    scheduling: str = REPLICA  # or DAEMON: one task on every ACTIVE instance
    deregistration_delay: float = 0.0  # seconds a stopped task stays DEACTIVATING

    @property
    def daemon(self) -> bool:
        return self.scheduling == DAEMON

    @property
    def group(self) -> str:
        """The service whose availability this service's tasks count toward."""
        return self.overflow_of or self.name


class Instance:
    __slots__ = (
        "az",
        "capacity",
        "cpu",
        "free_cpu",
        "free_mem",
        "id",
        "image",
        "launched_at",
        "memory",
        "pool",
        "price",
        "provider",
        "registered_at",
        "status",
        "tasks",
        "type",
        "used_cpu",
    )

    def __init__(
        self,
        id: str,
        pool: str,
        type: InstanceType,
        az: str,
        capacity: str,
        price: float,
        launched_at: float,
        image: str = "",
        provider: str = "",
        reserved_memory: int = 0,
    ) -> None:
        self.id = id
        self.image = image  # the launch template version / AMI it was launched from
        self.pool = pool
        self.provider = provider  # the capacity provider it belongs to ("": none)
        self.type = type
        self.az = az
        self.capacity = capacity  # "spot" | "on-demand"
        self.price = price
        self.launched_at = launched_at
        self.registered_at: float | None = None
        self.status = LAUNCHING
        self.cpu = type.cpu_units
        self.memory = type.memory_mib - reserved_memory  # registered memory
        self.free_cpu = self.cpu
        self.free_mem = self.memory
        self.used_cpu = 0.0  # modelled actual use, in cpu units
        self.tasks: dict[str, Task] = {}

    def attribute(self, name: str) -> str:
        if name in ("attribute:ecs.availability-zone", "availability-zone"):
            return self.az
        if name in ("attribute:ecs.instance-type", "instance-type"):
            return self.type.name
        if name in ("instanceId", "host", "ec2InstanceId"):
            return self.id
        if name in (PROVIDER_ATTRIBUTE, "capacity-provider-name"):
            return self.provider
        return ""

    def replicas(self) -> int:
        """Tasks on it that are not daemon tasks, in any status (DEACTIVATING ones too): an
        instance without any runs nothing but its daemons."""
        return sum(1 for t in self.tasks.values() if not t.service.daemon)

    def busy(self) -> bool:
        """Whether it holds more than running daemon tasks: a replica task, or any task still
        DEACTIVATING (an instance is only idle, and only terminated, without them)."""
        return any(not t.service.daemon or t.state == DEACTIVATING for t in self.tasks.values())

    @property
    def load(self) -> float:
        """Modelled CPU use as a share of the instance's CPU."""
        return self.used_cpu / self.cpu


class Task:
    __slots__ = (
        "az",
        "created_at",
        "healthy_at",
        "id",
        "instance",
        "revision",
        "running_at",
        "service",
        "state",
    )

    def __init__(
        self,
        id: str,
        service: ServiceSpec,
        instance: Instance | None,
        az: str,
        created_at: float,
        revision: int,
    ) -> None:
        self.id = id
        self.service = service
        self.instance = instance  # None on Fargate
        self.az = az
        self.created_at = created_at
        self.running_at = created_at + service.start_delay
        self.healthy_at = self.running_at + service.health_delay
        self.revision = revision
        self.state = PENDING

    def healthy(self, now: float) -> bool:
        return self.state == RUNNING and now >= self.healthy_at

    @property
    def fargate(self) -> bool:
        return self.instance is None


@dataclass
class ServiceState:
    spec: ServiceSpec
    tasks: dict[str, Task] = field(default_factory=dict)  # PENDING or RUNNING
    revision: int = 1
    unplaced: int = 0  # tasks the scheduler wanted but could not place (last reconcile)
    running: int = 0  # of ``tasks``, those RUNNING (the rest are PENDING)
    rebalancing: bool = False  # an AZ-rebalancing task was started; stop a surplus one when healthy


Observer = Callable[[str, object], None]


class Cluster:
    """Instances, services and tasks, with the indexes placement and accounting need."""

    def __init__(self, observer: Observer | None = None) -> None:
        self.instances: dict[str, Instance] = {}
        self.services: dict[str, ServiceState] = {}
        self._ids = itertools.count(1)
        self._observe = observer or (lambda kind, obj: None)

    # -- instances ------------------------------------------------------------------------

    def launch(
        self,
        pool: str,
        type: InstanceType,
        az: str,
        capacity: str,
        price: float,
        now: float,
        id: str | None = None,
        image: str = "",
        provider: str = "",
        reserved_memory: int = 0,
    ) -> Instance:
        inst = Instance(
            id or f"i-{next(self._ids):017x}",
            pool,
            type,
            az,
            capacity,
            price,
            now,
            image,
            provider,
            reserved_memory,
        )
        self.instances[inst.id] = inst
        self._observe("launch", inst)
        return inst

    def register(self, inst: Instance, now: float) -> None:
        if inst.status == LAUNCHING:
            inst.status = ACTIVE
            inst.registered_at = now
            self._observe("register", inst)

    def drain(self, inst: Instance) -> bool:
        """Set DRAINING; False if it was not ACTIVE."""
        if inst.status != ACTIVE:
            return False
        inst.status = DRAINING
        self._observe("drain", inst)
        return True

    def activate(self, inst: Instance) -> bool:
        """Set a DRAINING instance ACTIVE again; False if it was not DRAINING."""
        if inst.status != DRAINING:
            return False
        inst.status = ACTIVE
        self._observe("activate", inst)
        return True

    def terminate(self, inst: Instance, now: float) -> list[Task]:
        """The instance is gone; its tasks die with it. Returns the tasks that were live."""
        if inst.status == TERMINATED:
            return []
        killed = [t for t in inst.tasks.values() if t.state not in (STOPPED, DEACTIVATING)]
        for task in [t for t in inst.tasks.values() if t.state == DEACTIVATING]:
            self.finish_stop(task)
        for task in killed:
            self.stop_task(task, now, reason="instance-terminated")
        inst.status = TERMINATED
        self._observe("terminate", inst)
        del self.instances[inst.id]
        return killed

    def active_instances(self) -> Iterable[Instance]:
        return (i for i in self.instances.values() if i.status == ACTIVE)

    # -- services and tasks ---------------------------------------------------------------

    def add_service(self, spec: ServiceSpec) -> ServiceState:
        state = ServiceState(spec)
        self.services[spec.name] = state
        self._observe("service", state)
        return state

    def set_desired(self, name: str, desired: int) -> None:
        state = self.services[name]
        old = state.spec
        state.spec = _replace_desired(old, desired)
        self._observe("desired", (old, state.spec))

    def start_task(self, service: ServiceState, inst: Instance | None, az: str, now: float) -> Task:
        spec = service.spec
        task = Task(f"t-{next(self._ids)}", spec, inst, az, now, service.revision)
        service.tasks[task.id] = task
        if inst is not None:
            inst.tasks[task.id] = task
            inst.free_cpu -= spec.cpu
            inst.free_mem -= spec.memory
        self._observe("start", task)
        return task

    def mark_running(self, task: Task) -> None:
        if task.state == PENDING:
            task.state = RUNNING
            self.services[task.service.name].running += 1
            if task.instance is not None:
                task.instance.used_cpu += task.service.cpu * task.service.cpu_use
            self._observe("running", task)

    def stop_task(self, task: Task, now: float, reason: str) -> None:
        """Stop a task: STOPPED, or DEACTIVATING first if it was RUNNING on an instance behind a
        deregistration delay (the caller calls :meth:`finish_stop` once the delay has passed)."""
        if task.state in (STOPPED, DEACTIVATING):
            return
        was_running = task.state == RUNNING
        inst = task.instance
        deregisters = (
            was_running
            and inst is not None
            and task.service.deregistration_delay > 0
            and reason != "instance-terminated"
        )
        task.state = DEACTIVATING if deregisters else STOPPED
        if inst is not None:
            if not deregisters:
                inst.tasks.pop(task.id, None)
                inst.free_cpu += task.service.cpu
                inst.free_mem += task.service.memory
            if was_running:
                inst.used_cpu -= task.service.cpu * task.service.cpu_use
        service = self.services[task.service.name]
        if service.tasks.pop(task.id, None) is not None and was_running:
            service.running -= 1
        self._observe("stop", (task, reason))

    def finish_stop(self, task: Task) -> None:
        """A DEACTIVATING task is STOPPED: its reservation is free again."""
        if task.state != DEACTIVATING:
            return
        task.state = STOPPED
        inst = task.instance
        if inst is not None:
            inst.tasks.pop(task.id, None)
            inst.free_cpu += task.service.cpu
            inst.free_mem += task.service.memory
        self._observe("stopped", task)


def _replace_desired(spec: ServiceSpec, desired: int) -> ServiceSpec:
    from dataclasses import replace

    return replace(spec, desired=desired)
