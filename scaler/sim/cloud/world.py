"""The simulated cloud's shared state: EC2 instances, which every simulated service sees.

EC2 launches an instance (from a launch template, an EC2 Fleet or an Auto Scaling group); it is
``pending`` for its boot delay, then ``running``; a terminate makes it ``shutting-down`` and, a
little later, ``terminated``. Services that care about an instance's life subscribe to it:
ECS registers a container instance when one boots, Auto Scaling replaces a member that is lost.

Everything happens on the running loop's (virtual) time: delays are ``loop.call_later``
callbacks, so the world advances exactly as far as the scaler's own coroutines wait. Random draws
(boot delays, ids) come from one seeded stream, so a run replays.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scaler.sim.cloud.catalog import price

PENDING, RUNNING, SHUTTING_DOWN, TERMINATED = "pending", "running", "shutting-down", "terminated"
SPOT, ON_DEMAND = "spot", "on-demand"
SHUTDOWN_DELAY = 30.0  # seconds from shutting-down to terminated


@dataclass
class Ec2Instance:
    id: str
    instance_type: str
    az: str
    lifecycle: str  # SPOT | ON_DEMAND
    image_id: str
    launched: float  # loop time
    state: str = PENDING
    tags: dict[str, str] = field(default_factory=dict)
    template: str = ""  # the launch template's name, if any
    group: str = ""  # the Auto Scaling group it belongs to, if any


Listener = Callable[[Ec2Instance], None]


@dataclass
class World:
    """The instances of one simulated account and region."""

    start: datetime = datetime(2026, 6, 1, tzinfo=UTC)
    seed: int = 0
    boot_delay: tuple[float, float] = (60.0, 120.0)
    instances: dict[str, Ec2Instance] = field(default_factory=dict)
    on_running: list[Listener] = field(default_factory=list)
    on_terminated: list[Listener] = field(default_factory=list)
    # (instance type, AZ) pools out of capacity: spot launches there fail, and on-demand ones
    # too if the pool is also in short_on_demand
    short_pools: set[tuple[str, str]] = field(default_factory=set)
    short_on_demand: set[tuple[str, str]] = field(default_factory=set)
    rng: random.Random = field(init=False)
    _ids: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"world:{self.seed}")

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self, at: float | None = None) -> datetime:
        return self.start + timedelta(seconds=self.now() if at is None else at)

    def launch(
        self,
        instance_type: str,
        az: str,
        lifecycle: str,
        image_id: str,
        *,
        tags: dict[str, str] | None = None,
        template: str = "",
        group: str = "",
    ) -> Ec2Instance:
        """A new instance, pending now and running after a boot delay."""
        self._ids += 1
        inst = Ec2Instance(
            f"i-{self._ids:017x}",
            instance_type,
            az,
            lifecycle,
            image_id,
            self.now(),
            tags=dict(tags or {}),
            template=template,
            group=group,
        )
        self.instances[inst.id] = inst
        delay = self.rng.uniform(*self.boot_delay)
        asyncio.get_running_loop().call_later(delay, self._boot, inst)
        return inst

    def _boot(self, inst: Ec2Instance) -> None:
        if inst.state != PENDING:
            return
        inst.state = RUNNING
        for listener in list(self.on_running):
            listener(inst)

    def terminate(self, inst: Ec2Instance) -> None:
        """Shut ``inst`` down now; terminated a little later."""
        self._shut(inst)

    def _shut(self, inst: Ec2Instance) -> None:
        if inst.state in (SHUTTING_DOWN, TERMINATED):
            return
        inst.state = SHUTTING_DOWN
        for listener in list(self.on_terminated):
            listener(inst)
        asyncio.get_running_loop().call_later(SHUTDOWN_DELAY, self._gone, inst)

    def _gone(self, inst: Ec2Instance) -> None:
        inst.state = TERMINATED

    def has_capacity(self, instance_type: str, az: str, lifecycle: str) -> bool:
        """Whether a launch of ``lifecycle`` can be had in the pool now."""
        short = self.short_pools if lifecycle == SPOT else self.short_on_demand
        return (instance_type, az) not in short

    def price(self, instance_type: str, az: str, lifecycle: str) -> float:
        """What an hour of ``instance_type`` of ``lifecycle`` costs in ``az`` (the catalog's)."""
        return price(instance_type, spot=lifecycle == SPOT)

    def live(self) -> list[Ec2Instance]:
        return [i for i in self.instances.values() if i.state in (PENDING, RUNNING)]
