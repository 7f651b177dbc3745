"""The world's EC2 instances as the engine's: one set of instances, one market, one bill.

:class:`EngineWorld` is a :class:`~scaler.sim.cloud.world.World` over the simulator's engine
(:class:`~scaler.sim.engine.Sim`: the one ECS model, the spot market, the accounting) that a
:class:`~scaler.sim.cloud.driver.LoopDriver` runs on the loop. It is the engine's
:class:`~scaler.sim.engine.World` as well, so every change of the model shows in the EC2 records
the simulated services (EC2, EC2 Fleet, Auto Scaling, CloudWatch) read:

- a launch (:meth:`EngineWorld.launch`, as EC2 Fleet, Auto Scaling and Spot Fleet ask for it)
  goes through the engine's own launch path, into the engine's pool of that instance type, AZ
  and capacity (and, for the group of a capacity provider, :attr:`EngineWorld.providers`, of
  that provider): its boot delay, its ECS registration, a storm reclaiming what is launched into
  a pool it struck, the accounting and the cost all apply. The EC2 record has the model
  instance's id. Instances the engine launches by itself (the scenario's initial ones, an
  operator's headroom) get a record too, carrying what ``origin`` says for their pool (the tags
  a scaler reads to count them as its pools' members);
- the engine's ``register`` makes the record ``running``; its ``terminate`` (a spot reclaim at
  the notice's end, an AZ outage, a terminate, a forced deregistration) makes it
  ``shutting-down`` and later ``terminated``; the world's listeners hear both, as they do in a
  :class:`World` alone (Auto Scaling replaces a member lost);
- :meth:`EngineWorld.terminate` terminates through the engine; :meth:`EngineWorld.has_capacity`
  is the engine's ``available`` (market shortages, storms, outages), none where the scenario has
  no pool of that type, AZ and capacity; :meth:`EngineWorld.price` is the pool's price;
  :meth:`EngineWorld.cpu` is the model's CPU use of an instance (for CloudWatch), the use now
  for every period asked (the engine keeps no history of it).

Every read first brings the engine up to the loop's time, and every change wakes its driver.
The engine counts one ``CreateFleet`` per instance launched through the world in its own API
figures; the calls the scaler made are the transport's count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scaler.ecs.cluster import Instance
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.world import PENDING, Ec2Instance, World
from scaler.sim.engine import EPOCH
from scaler.sim.scenario import Pool

WARM = 3600.0  # seconds the instances the run starts with have been running


@dataclass(frozen=True)
class Origin:
    """What an EC2 record carries beyond the model's facts: where the launch came from."""

    image_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    template: str = ""
    group: str = ""


class EngineWorld(World):
    """The instances of the engine ``driver`` runs, as EC2 instances (see the module
    docstring). ``origin``: what an instance the engine launched by itself carries."""

    def __init__(
        self, driver: LoopDriver, origin: Callable[[Pool], Origin] | None = None, seed: int = 0
    ) -> None:
        super().__init__(start=EPOCH, seed=seed)
        self.driver = driver
        self.sim = driver.sim
        self.origin = origin or (lambda _pool: Origin())
        self._launching: Origin | None = None
        self.launched: dict[str, str] = {}  # instance id -> engine pool, launched through here
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._of_provider: dict[tuple[str, str, str, str], Pool] = {}
        for pool in self.sim.scenario.pools:
            self._pools.setdefault((pool.instance_type, pool.az, pool.capacity), pool)
            key = (pool.instance_type, pool.az, pool.capacity, pool.capacity_provider or "")
            self._of_provider.setdefault(key, pool)
        self.providers: dict[str, str] = {}  # Auto Scaling group -> the capacity provider it is
        if self.sim.world is not None:
            raise ValueError("the engine already mirrors into another world")
        self.sim.world = self

    def pool(
        self, instance_type: str, az: str, lifecycle: str, provider: str | None = None
    ) -> Pool | None:
        """The engine's pool of ``instance_type`` in ``az`` of ``lifecycle`` (None: none); with
        ``provider``, that capacity provider's pool."""
        if provider is not None:
            return self._of_provider.get((instance_type, az, lifecycle, provider))
        return self._pools.get((instance_type, az, lifecycle))

    # -- the World the services use ---------------------------------------------------------

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
        """A new instance of the engine's pool (a capacity provider's group: of the provider's
        pool), pending now and running when it registers."""
        pool = self.pool(instance_type, az, lifecycle, self.providers.get(group))
        if pool is None:
            raise ValueError(f"the scenario has no {lifecycle} pool of {instance_type} in {az}")
        self.driver.sync()
        self._launching = Origin(image_id, dict(tags or {}), template, group)
        try:
            launched = self.sim.launch_instances([pool.name], 1, why=group or template or "ec2")
        finally:
            self._launching = None
        self.driver.poke()
        if not launched:
            raise RuntimeError(f"{pool.name} has no capacity now (ask has_capacity first)")
        self.launched[launched[0].id] = pool.name
        return self.instances[launched[0].id]

    def terminate(self, inst: Ec2Instance) -> None:
        """Terminate ``inst`` in the engine (its record follows the model)."""
        self.driver.sync()
        model = self.sim.instance(inst.id)
        if model is None:
            self._shut(inst)
            return
        self.sim.terminate(model, why="TerminateInstances")
        self.driver.poke()

    def has_capacity(self, instance_type: str, az: str, lifecycle: str) -> bool:
        pool = self.pool(instance_type, az, lifecycle)
        if pool is None or not super().has_capacity(instance_type, az, lifecycle):
            return False
        self.driver.sync()
        return self.sim.available(pool)

    def price(self, instance_type: str, az: str, lifecycle: str) -> float:
        pool = self.pool(instance_type, az, lifecycle)
        if pool is None:
            return super().price(instance_type, az, lifecycle)
        if pool.price is None:  # the type's on-demand price, as the engine bills it
            return self.sim.scenario.instance_types[instance_type].on_demand_price
        return pool.price

    def cpu(self, instance_id: str, at: float) -> float:
        """The model's CPU use of ``instance_id``, in percent (CloudWatch's ``cpu``)."""
        self.driver.sync()
        model = self.sim.instance(instance_id)
        return 100.0 * model.load if model is not None else 0.0

    # -- the engine's World: its changes mirrored ---------------------------------------------

    def new_instance_id(self, pool: Pool) -> str | None:
        return None  # the model's ids are the EC2 ids

    def mirror(self, kind: str, obj: object) -> None:
        if not isinstance(obj, Instance):
            return
        if kind == "launch":
            self._launched(obj)
            return
        record = self.instances.get(obj.id)
        if record is None:
            return
        if kind == "register" and record.state == PENDING:
            self._boot(record)
        elif kind == "terminate":
            self._shut(record)

    def _launched(self, inst: Instance) -> None:
        pool = self.sim.pools[inst.pool]
        origin = self._launching or self.origin(pool)
        warm = self._launching is None and self.sim.now == 0.0  # the run starts with it
        self.instances[inst.id] = Ec2Instance(
            inst.id,
            pool.instance_type,
            inst.az,
            inst.capacity,
            origin.image_id or inst.image,
            self.sim.now - WARM if warm else self.sim.now,
            tags=dict(origin.tags),
            template=origin.template,
            group=origin.group,
        )
