"""Move a cluster off Spot Fleet requests onto the scaler's groups, without downtime.

A Spot Fleet cannot change its launch configuration: a new image or instance type means a new
fleet and draining the old one by hand. ``SCALER_MIGRATE_SPOT_FLEETS`` names fleet requests as
*read-only pools*: the scaler never grows them; it replaces their instances with instances of its
own groups the way the roll replaces out-of-date ones (:func:`scaler.plan.roll.plan_roll`, one
replacement planner): a replacement first in the cheapest usable group (kept while replacements
are in flight), then, once it has arrived and nothing is launching there, a fleet instance drains
(the emptiest first, reason ``migration``), within ``SCALER_DISRUPTION_BUDGET`` and
``SCALER_MIGRATE_PER_HOUR``, paused in a spot storm. Replacement is one instance for one: if the
group's instances are smaller, the capacity planner tops up what is missing.

Each fleet instance is tagged ``scaler:retiring=migration`` before its drain. Once it holds no
task of any status (a task being stopped still counts) the fleet's target capacity is lowered
(``ModifySpotFleetRequest``, ``noTermination``, so the fleet neither replaces it nor picks
another to stop) to the weight of its instances that are not retiring, never raised, and the
instance is terminated (``TerminateInstances``). Both calls
repeat safely: the target is an absolute value. Fleets of type ``request`` do not replace
instances and are not modified. The migration waits while a roll is under way (and the roll and
consolidation wait for it). Fleet instances not registered in the cluster are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from scaler.aws.clients import AwsClients, is_not_found
from scaler.aws.retiring import Ec2Facts, describe, retiring
from scaler.capacity.observed import Observed
from scaler.capacity.ports import Actuator
from scaler.capacity.roll import carry_out
from scaler.plan.capacity import CapacityMemory, CapacityPolicy, CapacitySnapshot, sources
from scaler.plan.roll import Machine, RollPlan, RollPolicy, RollState, plan_roll

log = logging.getLogger(__name__)
ACTIVE_STATES = frozenset({"submitted", "active", "modifying"})


@dataclass(frozen=True)
class Fleet:
    id: str
    target: float  # TargetCapacity, in the fleet's weight units
    maintain: bool  # type maintain: the fleet replaces lost instances
    instances: dict[str, float] = field(default_factory=dict)  # instance id -> weight


@dataclass(frozen=True)
class Fleets:
    fleets: tuple[Fleet, ...] = ()
    facts: dict[str, Ec2Facts] = field(default_factory=dict)  # on the fleets' instances

    def of(self, iid: str) -> Fleet | None:
        return next((f for f in self.fleets if iid in f.instances), None)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(i for f in self.fleets for i in f.instances)

    @property
    def remaining(self) -> frozenset[str]:
        """Instances still to be replaced: not retiring, not terminated."""
        going = retiring(self.facts, "migration")
        return frozenset(i for i in self.ids - going if not self.facts.get(i, Ec2Facts()).gone)


class FleetReader:
    """The fleets' target capacity, type, instances and their weights."""

    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    async def read(self, ids: tuple[str, ...]) -> Fleets | None:
        """None (with a warning) if the fleets cannot be read: no migration this cycle."""
        try:
            reply = await self._aws.ec2.describe_spot_fleet_requests(SpotFleetRequestIds=list(ids))
            fleets = [await self._fleet(c) for c in reply.get("SpotFleetRequestConfigs", [])]
            members = [i for f in fleets for i in f.instances]
            return Fleets(tuple(fleets), await describe(self._aws, members))
        except Exception as exc:
            log.warning("spot fleets not read: no migration this cycle", extra={"error": repr(exc)})
            return None

    async def _fleet(self, described: dict[str, Any]) -> Fleet:
        fid = str(described["SpotFleetRequestId"])
        config = described.get("SpotFleetRequestConfig", {})
        weights = _weights(config)
        instances: dict[str, float] = {}
        token = ""
        while True:
            page = await self._aws.ec2.describe_spot_fleet_instances(
                SpotFleetRequestId=fid, **({"NextToken": token} if token else {})
            )
            for inst in page.get("ActiveInstances", []):
                instances[str(inst["InstanceId"])] = weights.get(inst.get("InstanceType", ""), 1.0)
            token = page.get("NextToken") or ""
            if not token:
                break
        # a cancelled fleet (instances left running) replaces nothing and cannot be modified
        active = described.get("SpotFleetRequestState", "active") in ACTIVE_STATES
        maintain = active and config.get("Type", "maintain") == "maintain"
        return Fleet(fid, float(config.get("TargetCapacity", 0)), maintain, instances)


async def missing_fleets(aws: AwsClients, ids: tuple[str, ...]) -> list[str]:
    """Problems with the fleets named in ``SCALER_MIGRATE_SPOT_FLEETS``, one line each."""
    problems = []
    for fid in ids:
        try:
            reply = await aws.ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fid])
            found = reply.get("SpotFleetRequestConfigs", [])
        except Exception as exc:
            if not is_not_found(exc):
                raise
            found = []
        if not found:
            problems.append(f"SCALER_MIGRATE_SPOT_FLEETS: Spot Fleet request {fid!r} not found")
        elif found[0].get("SpotFleetRequestState") not in ACTIVE_STATES:
            log.warning(
                "Spot Fleet request not active: its instances are still migrated",
                extra={"fleet": fid, "state": found[0].get("SpotFleetRequestState")},
            )
    return problems


def _weights(config: dict[str, Any]) -> dict[str, float]:
    """Instance type -> weighted capacity, from launch specifications or template overrides."""
    specs = list(config.get("LaunchSpecifications", []))
    for template in config.get("LaunchTemplateConfigs", []):
        specs += template.get("Overrides", [])
    return {
        str(s["InstanceType"]): float(s.get("WeightedCapacity") or 1.0)
        for s in specs
        if s.get("InstanceType")
    }


def lowered_target(fleet: Fleets, fid: str) -> float | None:
    """The target capacity fleet ``fid`` should have with its retiring instances gone: the weight
    of the rest, never above today's; None when it needs no change (or is not ``maintain``)."""
    found = next((f for f in fleet.fleets if f.id == fid), None)
    if found is None or not found.maintain:
        return None
    going = retiring(fleet.facts, "migration")
    keep = sum(w for iid, w in found.instances.items() if iid not in going)
    target = min(found.target, keep)
    return target if target < found.target else None


class Migration:
    """What the migration keeps between cycles: the group it launches in, the replacements not
    yet matched by a drain, and this hour's launches."""

    def __init__(self, aws: AwsClients, fleets: tuple[str, ...], policy: RollPolicy) -> None:
        self.reader = FleetReader(aws)
        self.fleets = fleets
        self.policy = policy
        self.state = RollState()
        self.place = ""  # the group replacements are launched in, while any are in flight
        self.launched_at: list[float] = []

    async def step(
        self,
        observed: Observed,
        actuator: Actuator,
        memory: CapacityMemory,
        capacity: CapacityPolicy,
        blocked: frozenset[str],
    ) -> Fleets | None:
        """One migration step (:func:`migrate`)."""
        return await migrate(self, observed, actuator, memory, capacity, blocked)

    def plan(
        self,
        snap: CapacitySnapshot,
        fleets: Fleets,
        memory: CapacityMemory,
        capacity: CapacityPolicy,
        blocked: frozenset[str],
    ) -> RollPlan:
        """The roll planner run on the fleets' instances, each replaced in one of the groups."""
        now = snap.now
        self.launched_at = [t for t in self.launched_at if now - t < 3600.0]
        if not self.state.in_flight or not self.place:
            usable = [
                p
                for p in sources(snap, memory, capacity, "*")
                if p.managed and (p.max_size is None or p.size < p.max_size)
            ]
            self.place = usable[0].name if usable else ""
        managed = {p.name for p in snap.pools if p.managed}
        members = fleets.ids
        machines = {
            n.id: Machine(n.id, n.pool if n.pool in managed else self.place, n.status, n.tasks)
            for n in snap.nodes
            if n.pool in managed or n.id in members
        }
        going = retiring(fleets.facts, "migration")
        # tagged and draining: on their way out; tagged but ACTIVE (the drain failed, or a
        # restart came between tag and drain): to be drained again
        ours = {i for i in members & going if i in machines and machines[i].status != "ACTIVE"}
        again = {i for i in members & going if i in machines and machines[i].status == "ACTIVE"}
        return plan_roll(
            machines,
            fleets.remaining | again,
            now,
            self.policy,
            self.state,
            ours=ours,
            unplaced=sum(s.unplaced for s in snap.services),
            doomed={n.id for n in snap.nodes if n.notice_ends is not None},
            replaced_last_hour=max(0, len(self.launched_at) - self.state.in_flight),
            last_trouble=memory.last_spot_trouble(),
            blocked=blocked | {""},  # no usable group: nothing to launch in
        )


async def migrate(
    migration: Migration,
    observed: Observed,
    actuator: Actuator,
    memory: CapacityMemory,
    capacity: CapacityPolicy,
    blocked: frozenset[str],
) -> Fleets | None:
    """One migration step: launch replacements, drain the fleet instances whose replacement is
    up, retire the drained ones that are empty. The fleets as read, or None if they could not
    be."""
    fleets = await migration.reader.read(migration.fleets)
    if fleets is None:
        return None
    snap = observed.snapshot
    plan = migration.plan(snap, fleets, memory, capacity, blocked)
    for reason in plan.reasons:
        log.info("migration decision", extra={"reason": reason})
    migration.state = await carry_out(plan, observed, actuator, "migration", migration.launched_at)
    await _retire(observed, fleets, actuator)
    return fleets


async def _retire(observed: Observed, fleets: Fleets, actuator: Actuator) -> None:
    """Lower each fleet's target past its drained, empty instances, then terminate those."""
    going = retiring(fleets.facts, "migration")
    for n in observed.snapshot.nodes:
        fleet = fleets.of(n.id)
        if fleet is None or n.id not in going or n.status != "DRAINING" or n.tasks:
            continue
        if fleets.facts[n.id].gone:
            continue  # terminated already; ECS deregisters it
        if not await actuator.empty(observed.instances.get(n.id)):
            continue  # a task is still stopping (draining its connections) there
        target = lowered_target(fleets, fleet.id)
        if target is not None and not await actuator.lower_fleet(fleet.id, target):
            continue  # the fleet would replace it: try again next cycle
        await actuator.terminate(n.id, "migration", observed.snapshot.now)
