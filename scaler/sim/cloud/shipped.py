"""The shipped scaler in the simulated world: the objects ``scaler run`` builds, unchanged, on
virtual time, against simulated AWS services backed by the simulator's engine.

:class:`ShippedWorld` builds the world (the engine on the loop, SQS with a dead-letter queue,
ECS and DynamoDB over it, each signal published into the scaler's queue as EventBridge sends it;
EC2, Auto Scaling and CloudWatch over the engine's instances, :mod:`.engine_world`) and runs
:class:`scaler.loop.Scaler` in it with the given settings and no HTTP server (the world has no
sockets): one replica or two sharing a lease table, each crashed and restarted when a
:class:`Crash` says so. :func:`run_shipped` returns the engine's figures, the AWS calls the
scaler made and what a fault campaign checks (:mod:`scaler.sim.cloud.campaign`).

With ``capacity``, the scaler tops up capacity as an operator of the scenario's cluster would
configure it (:func:`capacity_settings`): a template pool per instance type and capacity the
scenario has pools of (``spot-m5.xlarge`` launched from the launch template
``spot-m5.xlarge-nodes``, which names its type, ``on-demand-m5.xlarge`` the fallback), each
launched with EC2 Fleet across every AZ (``SCALER_FLEET_SUBNETS``, one subnet per AZ;
``SCALER_FLEET_INSTANCE_TYPES`` left empty, so each fleet launches its template's type). So the
planner knows the size of what each pool launches and picks a type that fits the tasks it
places, and one ``CreateFleet`` finds whichever AZ has capacity. (One pool across all types
would not: the planner would size it by one type while EC2 Fleet launches any.) The instances
the run starts with carry the tags of the template pool of their type and capacity, as if it
had launched them.

A pool of a capacity provider is not a template pool: in ECS a capacity provider is an Auto
Scaling group, so each provider of the scenario's pools is one group of the world
(:func:`provider_groups`, ``asg-cp-a`` for ``cp-a``), holding its pools' instance types and AZs
and the instances the run starts with there; the simulated ECS names it as the provider's group,
and with ``capacity`` the scaler tops up through it (``SCALER_SPOT_POOLS`` or
``SCALER_ON_DEMAND_POOLS``), as an operator whose services are bound to providers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scaler.aws.clients import AwsTarget
from scaler.aws.templates import CLUSTER as CLUSTER_TAG
from scaler.aws.templates import POOL, TEMPLATE_ID, TEMPLATE_VERSION
from scaler.loop import Scaler
from scaler.sim.cloud.autoscaling import AutoScaling
from scaler.sim.cloud.cloudwatch import CloudWatch
from scaler.sim.cloud.driver import LoopDriver, Publisher
from scaler.sim.cloud.dynamodb import Dynamodb
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.engine_world import Origin
from scaler.sim.cloud.faults import Faults
from scaler.sim.cloud.ledger import Ledger, RecordedWorld, Recorder, Watched
from scaler.sim.cloud.limits import Limits
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.cloud.transport import Operations, Service, SimulatedAws
from scaler.sim.cloud.vloop import LoopClock, run
from scaler.sim.engine import EPOCH, Sim
from scaler.sim.scenario import Pool, Scenario
from scaler.sim.settings_file import world_settings

CLUSTER = "sim"
TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))
LEASES = "scaler-leases"
MAX_RECEIVES = 5
DRAINER_LOG = "scaler.aws.drainer"  # logs each drain with its reason


@dataclass(frozen=True)
class Crash:
    """Replica ``replica`` dies at ``at`` (no shutdown of its own) and starts again at
    ``back``."""

    at: float
    back: float
    replica: int = 0


@dataclass(frozen=True)
class Outcome:
    figures: dict[str, Any]
    calls: dict[str, int]  # "service:Operation" -> calls the scaler made
    signals: int  # events published into the scaler's queue
    throttled: dict[str, int]  # "service:Operation" -> answers throttled
    warned: dict[str, float] = field(default_factory=dict)  # instance -> spot warning sent
    registered: frozenset[str] = frozenset()  # warned instances registered when warned
    drained: dict[str, float] = field(default_factory=dict)  # instance -> set DRAINING
    # container instances named in a state change that never were the cluster's (one gone a
    # moment before is a race ECS answers with a failure, not another cluster's instance)
    unknown: tuple[str, ...] = ()
    stranded: int = 0  # messages left in the queue long after they were sent
    dead: int = 0  # messages in the dead-letter queue
    malformed: int = 0  # of which were sent malformed
    fault_hits: dict[str, int] = field(default_factory=dict)
    launched: dict[str, str] = field(default_factory=dict)  # instance -> engine pool, via EC2
    engine: Sim | None = field(default=None, compare=False, repr=False)  # the world, at its end
    # event id -> when a receive of its message first reached a replica (absent: every receive's
    # answer was lost); of the dead-letter queue's well-formed messages, those none reached
    reached: dict[str, float] = field(default_factory=dict)
    dead_unreached: int = 0
    # of the others, those deleted after their work with the handle a replica held, superseded
    # by a receive whose answer was lost (the delete succeeds and deletes nothing, as on AWS)
    dead_superseded: int = 0
    warning_events: dict[str, str] = field(default_factory=dict)  # instance -> its warning's id
    ledger: Ledger = field(default_factory=Ledger)  # what the campaign's invariants read

    @property
    def warnings_reached(self) -> dict[str, float]:
        """Warned instance -> when its warning first reached a replica (absent: never)."""
        pairs = ((i, self.reached.get(e)) for i, e in self.warning_events.items())
        return {i: at for i, at in pairs if at is not None}


def run_shipped(
    scenario: Scenario,
    seed: int,
    settings: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    *,
    faults: Faults | None = None,
    crashes: Sequence[Crash] = (),
    replicas: int = 1,
    noise: Noise | None = None,
    capacity: bool = False,
    foresight: float = 0.0,
    trace: Callable[[dict[str, Any]], None] | None = None,
    prepare: Callable[[Sim], None] | None = None,
) -> Outcome:
    """Run ``scenario`` at ``seed`` with the shipped scaler acting (see the module docstring),
    under AWS's latency and throttling (``limits``; by default drawn from ``seed``); with
    ``capacity``, it tops up capacity in template pools (:func:`capacity_settings`).

    ``settings`` are :class:`~scaler.settings.Settings` field values; nothing is read from the
    environment, so a run depends on its arguments alone. ``foresight``: the engine tells of
    every interruption this long ahead (the oracle). ``trace`` receives the engine's records;
    ``prepare`` is given the engine before it begins (to schedule probes, swap its accounting)."""
    overrides = {**(capacity_settings(scenario) if capacity else {}), **(settings or {})}
    world = ShippedWorld(scenario, seed, overrides, limits or Limits(seed=seed))
    world.noise = noise or Noise()
    world.foresight, world.trace, world.prepare = foresight, trace, prepare
    return run(world.run(faults, crashes, replicas), seed=seed)


SPOT_POOL, ON_DEMAND_POOL = "spot", "on-demand"
GROUP_TAG = "aws:autoscaling:groupName"


@dataclass(frozen=True)
class ProviderGroup:
    """The Auto Scaling group a capacity provider of the scenario is."""

    name: str
    spot: bool
    instance_types: tuple[str, ...]  # the types with most instances first
    azs: tuple[str, ...]
    initial: int

    @property
    def template(self) -> str:
        return f"{self.name}-nodes"


def provider_groups(scenario: Scenario) -> dict[str, ProviderGroup]:
    """Capacity provider -> its Auto Scaling group: one per provider of the scenario's pools,
    of their instance types and AZs, spot if its first pool is."""
    found: dict[str, list[Pool]] = {}
    for pool in scenario.pools:
        if pool.capacity_provider:
            found.setdefault(pool.capacity_provider, []).append(pool)
    groups = {}
    for provider, pools in sorted(found.items()):
        initial: dict[str, int] = {}
        for pool in pools:
            initial[pool.instance_type] = initial.get(pool.instance_type, 0) + pool.initial
        groups[provider] = ProviderGroup(
            f"asg-{provider}",
            pools[0].capacity == SPOT_POOL,
            tuple(sorted(initial, key=lambda t: (-initial[t], t))),
            tuple(sorted({p.az for p in pools})),
            sum(initial.values()),
        )
    return groups


def template_pools(scenario: Scenario) -> dict[str, tuple[str, str, str]]:
    """Template pool -> (capacity, instance type, launch template): one per instance type and
    capacity of the scenario's pools that are no capacity provider's, the types with most
    instances first."""
    pools: dict[str, tuple[str, str, str]] = {}
    for capacity in (SPOT_POOL, ON_DEMAND_POOL):
        initial: dict[str, int] = {}
        for pool in scenario.pools:
            if pool.capacity_provider:
                continue
            if (pool.capacity == SPOT_POOL) == (capacity == SPOT_POOL):
                initial[pool.instance_type] = initial.get(pool.instance_type, 0) + pool.initial
        for kind in sorted(initial, key=lambda t: (-initial[t], t)):
            name = f"{capacity}-{kind}"
            pools[name] = (capacity, kind, f"{name}-nodes")
    return pools


def capacity_settings(scenario: Scenario) -> dict[str, Any]:
    """The scaler's capacity settings for ``scenario``'s cluster (see the module docstring):
    a template pool per instance type and capacity the scenario has pools of, across its AZs."""
    pools = template_pools(scenario)
    settings: dict[str, Any] = {
        "fleet_subnets": ",".join(subnet(az) for az in _azs(scenario)),
        "fleet_max_size": max(50, 2 * sum(p.initial for p in scenario.pools)),
    }
    for capacity, key in ((SPOT_POOL, "spot_templates"), (ON_DEMAND_POOL, "on_demand_templates")):
        named = [f"{name}={t}" for name, (c, _, t) in pools.items() if c == capacity]
        if named:
            settings[key] = ",".join(named)
    groups = provider_groups(scenario).values()
    for spot, key in ((True, "spot_pools"), (False, "on_demand_pools")):
        names = [g.name for g in groups if g.spot == spot]
        if names:
            settings[key] = ",".join(names)
    return settings


def subnet(az: str) -> str:
    """The subnet of ``az`` in the simulated VPC."""
    return f"subnet-{az}"


def _azs(scenario: Scenario) -> list[str]:
    return sorted({p.az for p in scenario.pools} | set(scenario.azs))


class Synced:
    """A simulated service over the engine's instances: every answer first brings the engine
    up to the loop's time, and every call wakes its driver (a change may be due sooner)."""

    def __init__(self, service: Operations, driver: LoopDriver) -> None:
        self.service, self.driver = service, driver

    async def answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.driver.sync()
        try:
            return await self.service.answer(operation, params)
        finally:
            self.driver.poke()


@dataclass(frozen=True)
class Noise:
    """What the queue carries besides the world's own events."""

    duplicates: float = 0.0  # share of receives that hand an in-flight message out again
    foreign: float = 0.0  # warnings for other clusters' instances, per warning of ours
    malformed: int = 0  # bodies that are no event at all, sent at the start


class ShippedWorld:
    def __init__(
        self, scenario: Scenario, seed: int, overrides: dict[str, Any], limits: Limits
    ) -> None:
        self.scenario, self.seed, self.overrides, self.limits = scenario, seed, overrides, limits
        self.pools = template_pools(scenario)  # template pool -> (capacity, type, template)
        self.groups = provider_groups(scenario)  # capacity provider -> its group
        self.noise = Noise()
        self.foresight = 0.0
        self.trace: Callable[[dict[str, Any]], None] | None = None
        self.prepare: Callable[[Sim], None] | None = None
        self.reached: dict[str, float] = {}  # event id -> first reached a replica
        self.handles: set[str] = set()  # receipt handles a receive brought to a replica
        self.scalers: list[Scaler] = []  # every replica's every life, for the ledger
        settings = world_settings(
            {**overrides, "cluster": CLUSTER, "queue_url": "https://sqs.invalid/events"}
        )
        self.recorder = Recorder(
            self._targets, settings.disruption_budget, CLUSTER, foreign=self._foreign
        )

    async def run(self, faults: Faults | None, crashes: Sequence[Crash], replicas: int) -> Outcome:
        loop = asyncio.get_running_loop()
        rng = random.Random(f"sqs:{self.seed}")
        self.sqs = Sqs(loop.time, rng=rng, duplicate_share=self.noise.duplicates)
        dynamodb = Dynamodb(clock=lambda: EPOCH.timestamp() + loop.time())
        dynamodb.table(LEASES, ttl="expires")  # as the deployment's TimeToLiveSpecification
        self.url, self.dlq = await self._queues()
        self.publisher = Publisher(
            self.sqs, self.url, self.noise.foreign, self.seed, self.foresight, CLUSTER
        )
        for i in range(self.noise.malformed):
            self.sqs.deliver(self.url, f"{{not an event {i}")
        self.sim = Sim(self.scenario, self.publisher, self.seed, trace=self.trace)
        if self.prepare is not None:
            self.prepare(self.sim)
        driver = LoopDriver(self.sim)
        self.ecs = Ecs(driver, CLUSTER)
        self.instances = RecordedWorld(driver, self._origin, seed=self.seed)
        self.instances.attach(self.recorder)
        types = {
            t.name: (t.vcpu, t.memory_mib, t.on_demand_price)
            for t in self.scenario.instance_types.values()
        }
        subnets = {subnet(az): az for az in _azs(self.scenario)}
        self.ec2 = Ec2(self.instances, subnets=subnets, types=types)
        self._templates(self.scenario.image)
        self.publisher.new_image = self._templates  # an AMI roll: a new version of each
        autoscaling = AutoScaling(self.instances, self.ec2)
        self._provider_groups(autoscaling)
        cloudwatch = CloudWatch(self.instances, self.instances.cpu)
        services: dict[str, Service] = {
            "sqs": self.sqs,
            "ecs": self.ecs,
            "dynamodb": dynamodb,
            "ec2": Synced(self.ec2, driver),
            "autoscaling": Synced(autoscaling, driver),
            "cloudwatch": Synced(cloudwatch, driver),
        }
        watched = {name: Watched(name, svc, self.recorder) for name, svc in services.items()}
        self.world = SimulatedAws(watched, self.limits, faults)
        stop = asyncio.Event()
        with _hearing(self.recorder.handler()):
            lives = [asyncio.create_task(self._replica(i, crashes, stop)) for i in range(replicas)]
            await driver.run(asyncio.Event())
            stop.set()
            await asyncio.gather(*lives)
        return self._outcome(faults)

    def _templates(self, image: str) -> None:
        """Register the template pools' and the provider groups' launch templates, or a new
        default version of each, launching ``image``."""
        for _, kind, template in self.pools.values():
            self.ec2.template(template, kind, image)
        for group in self.groups.values():
            self.ec2.template(group.template, group.instance_types[0], image)

    def _provider_groups(self, autoscaling: AutoScaling) -> None:
        """Make each capacity provider's Auto Scaling group (AZRebalance suspended, as the
        scaler asks of its groups), launching into the provider's pools; ECS names it."""
        top = max(50, 2 * sum(p.initial for p in self.scenario.pools))
        for provider, spec in self.groups.items():
            group = autoscaling.group(
                spec.name,
                spec.template,
                min_size=0,
                max_size=max(top, spec.initial),
                desired=spec.initial,
                azs=spec.azs,
                instance_types=spec.instance_types if len(spec.instance_types) > 1 else (),
                spot=spec.spot,
                suspended=["AZRebalance"],
            )
            self.instances.providers[spec.name] = provider
            self.ecs.groups[provider] = group.arn

    def _targets(self) -> dict[str, int]:
        """Each template pool's largest target in the plans the replicas carry out now."""
        found: dict[str, int] = {}
        for scaler in self.scalers:
            plan = scaler.capacity.last_plan if scaler.capacity is not None else None
            for pool, target in (plan.pool_targets if plan is not None else {}).items():
                found[pool] = max(found.get(pool, 0), target)
        return found

    def _foreign(self) -> list[str]:
        """The other clusters' instances warned so far."""
        return [f"i-0f{n:015x}" for n in range(1, self.publisher.foreign + 1)]

    def _origin(self, pool: Pool) -> Origin:
        """An instance the run starts with: as its capacity provider's group or the template
        pool of its type launched it."""
        group = self.groups.get(pool.capacity_provider or "")
        if group is not None:
            tags = {GROUP_TAG: group.name}
            return Origin(self.scenario.image, tags, group.template, group.name)
        capacity = SPOT_POOL if pool.capacity == SPOT_POOL else ON_DEMAND_POOL
        name = f"{capacity}-{pool.instance_type}"
        found = self.pools.get(name)
        template = self.ec2.templates.by_name.get(found[2]) if found else None
        if template is None:
            return Origin()
        tags = {
            CLUSTER_TAG: CLUSTER,
            POOL: name,
            TEMPLATE_ID: template.id,
            TEMPLATE_VERSION: str(template.default),
        }
        return Origin(self.scenario.image, tags, template.name)

    async def _queues(self) -> tuple[str, str]:
        dlq = (await self.sqs.create_queue(QueueName="events-dlq"))["QueueUrl"]
        arn = self.sqs.queues[dlq].arn
        redrive = f'{{"deadLetterTargetArn": "{arn}", "maxReceiveCount": {MAX_RECEIVES}}}'
        attributes = {"RedrivePolicy": redrive}
        url = (await self.sqs.create_queue(QueueName="events", Attributes=attributes))["QueueUrl"]
        return str(url), str(dlq)

    async def _replica(self, index: int, crashes: Sequence[Crash], stop: asyncio.Event) -> None:
        """One replica's lives: run until its next crash, wait to come back, run again."""
        loop = asyncio.get_running_loop()
        for crash in [*(c for c in crashes if c.replica == index), None]:
            own = asyncio.Event()
            life = asyncio.create_task(self._scaler(index).run(own))
            ends = crash.at if crash is not None else float("inf")
            waiters = [asyncio.create_task(stop.wait())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiters[0], timeout=max(0.0, ends - loop.time()))
            if stop.is_set() or crash is None:
                own.set()
                await life
                return
            life.cancel()  # a crash: nothing of the process runs on
            with contextlib.suppress(asyncio.CancelledError):
                await life
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, crash.back - loop.time()))
            if stop.is_set():
                return

    def _scaler(self, index: int) -> Scaler:
        values = {"cluster": CLUSTER, "queue_url": self.url, "lease_table": LEASES}
        settings = world_settings({**self.overrides, **values})
        clock = LoopClock(EPOCH)
        scaler = Scaler(settings, TARGET, clock, instrument=self._instrument, serve_http=False)
        self.scalers = [*self.scalers[-3:], scaler]  # the lives that may still run
        return scaler

    def _instrument(self, service: str, client: Any) -> None:
        self.world.install(service, client)
        if service == "sqs":
            client.meta.events.register("after-call.sqs.ReceiveMessage", self._received)

    def _received(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        """What a receive brought a replica: only an answer that reached it counts."""
        if http_response.status_code >= 300:
            return
        now = asyncio.get_running_loop().time()
        for message in parsed.get("Messages", []):
            self.handles.add(str(message.get("ReceiptHandle")))
            event = _event_id(message.get("Body", ""))
            if event is not None:
                self.reached.setdefault(event, now)

    def _outcome(self, faults: Faults | None) -> Outcome:
        warned = {
            e["detail"]["instance-id"]: (e["id"], at)
            for e, at in self.publisher.timed
            if e["detail-type"] == "EC2 Spot Instance Interruption Warning"
        }
        calls = {f"{s}:{op}": n for (s, op), n in sorted(self.world.calls.items())}
        horizon = self.sim.horizon
        queue = self.sqs.queues[self.url].messages.values()
        return Outcome(
            self.sim.finish(),
            calls,
            len(self.publisher.published),
            dict(self.limits.throttled),
            warned={i: at for i, (_, at) in warned.items()},
            registered=frozenset(self.publisher.registered),
            drained=dict(self.ecs.drained_at),
            unknown=tuple(r for r in self.ecs.unknown if _id(r) not in self.sim.terminated),
            stranded=sum(1 for m in queue if m.sent < horizon - 900),
            dead=len(self.sqs.queues[self.dlq].messages),
            malformed=self.noise.malformed,
            fault_hits=dict(faults.hits) if faults is not None else {},
            launched=dict(self.instances.launched),
            engine=self.sim,
            reached=dict(self.reached),
            warning_events={i: event for i, (event, _) in warned.items()},
            ledger=self.recorder.ledger(self.sim.now, self.sim.removals),
            dead_unreached=sum(
                1
                for m in self.sqs.queues[self.dlq].messages.values()
                if (event := _event_id(m.body)) is not None and event not in self.reached
            ),
            dead_superseded=sum(
                1
                for m in self.sqs.queues[self.dlq].messages.values()
                if (event := _event_id(m.body)) is not None and event in self.reached
                if any(h not in self.handles for h in m.superseded_by)
            ),
        )


@contextlib.contextmanager
def _hearing(handler: logging.Handler) -> Iterator[None]:
    """``handler`` hears the scaler's warnings and its drains (``drained``, INFO) while the run
    lasts; what was shown before (from the level the ``scaler`` logger had) still goes where it
    went. Other INFO records are not made at all: a campaign runs thousands of seeds."""
    logger, drainer = logging.getLogger("scaler"), logging.getLogger(DRAINER_LOG)
    shown, levels, propagate = (
        logger.getEffectiveLevel(),
        (logger.level, drainer.level),
        logger.propagate,
    )
    forward = _Forward(shown)
    logger.addHandler(handler)
    logger.addHandler(forward)
    logger.setLevel(min(shown, logging.WARNING))
    drainer.setLevel(min(drainer.getEffectiveLevel(), logging.INFO))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(forward)
        logger.setLevel(levels[0])
        drainer.setLevel(levels[1])
        logger.propagate = propagate


class _Forward(logging.Handler):
    """Hands the records at or above ``shown`` on to the root logger, as propagation did."""

    def __init__(self, shown: int) -> None:
        super().__init__(shown)

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


def _id(ref: str) -> str:
    """The instance id an ECS container instance reference ends with."""
    return ref.rsplit("/", 1)[-1]


def _event_id(body: str) -> str | None:
    """The id of the event ``body`` carries (None: no event at all)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return str(event["id"]) if isinstance(event, dict) and "id" in event else None
