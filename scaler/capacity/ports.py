"""The ports the capacity controller works through, each a :class:`typing.Protocol`.

A world plugs in its adapters: :class:`Reader` observes pools, instances and services into an
:class:`~scaler.capacity.observed.Observed`; :class:`Actuator` changes them (desired capacity,
launches, overflow companions, tags, drains, terminations) and remembers what it asked for;
:class:`Consolidation` and :class:`FleetMigration` are the optional scale-in by consolidation and
move off Spot Fleets; :class:`ServiceSurges` the roll's optional pre-drain surge. In AWS they
are :mod:`scaler.aws.capacity_reader`, :mod:`scaler.aws.capacity_actuator`,
:mod:`scaler.aws.consolidation`, :mod:`scaler.aws.migration` and :mod:`scaler.aws.surges`; the
controller, the roll and the migration know only these interfaces, so a simulated AWS in virtual
time can stand in for them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Protocol

from scaler.aws.replaced import Replacements
from scaler.aws.retiring import Ec2Facts
from scaler.capacity.observed import Observed
from scaler.model import ContainerInstance
from scaler.plan.capacity import CapacityMemory, CapacityPlan, CapacityPolicy, CapacitySnapshot
from scaler.plan.consolidate import ConsolidationPlan
from scaler.plan.roll import Deployment, RollState, SurgeMark


class Leader(Protocol):
    """With several replicas only the leader changes anything."""

    def holds(self) -> bool: ...


class Reader(Protocol):
    """Observes the capacity pools, instances and services at the start of each cycle."""

    @property
    def groups(self) -> dict[str, str]:
        """Pool name -> capacity type (spot or on-demand)."""
        ...

    async def validate(self) -> None:
        """Refuse, with a :class:`~scaler.settings.ConfigError`, pools that cannot be used."""
        ...

    async def read(self, now: float) -> Observed:
        """What the pools, instances and services are at ``now``."""
        ...

    async def failed_launches(self, owing: dict[str, float]) -> dict[str, str]:
        """Group -> why it could not launch, for the groups of ``owing`` (group -> when it was
        asked) that show a failed launch since then."""
        ...

    async def unchanged(self, now: float) -> bool:
        """Whether what a few calls show (the services' counts and deployments, the groups'
        sizes and instances) is as the last read left it (:mod:`scaler.capacity.quiet`)."""
        ...


class Actuator(Protocol):
    """Carries out plans; remembers what it asked of each group and what it changed."""

    leader: Leader  # checked before every call that changes something
    asked: dict[str, tuple[int, float]]  # group -> (desired capacity set, when)
    shortfalls: dict[str, float]  # pool -> when it could not launch what it was asked
    acted: int  # calls made that changed something
    replacements: Replacements  # what groups replace by themselves

    async def apply(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        """Launches, overflow companions' counts, evacuations and the return to spot."""
        ...

    async def give_back(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        """Lower the desired capacity of groups that did not replace what they lost."""
        ...

    async def grow(
        self,
        name: str,
        count: int,
        observed: Observed,
        now: float,
        reason: str,
        alternatives: tuple[str, ...] = (),
    ) -> int:
        """Launch ``count`` more instances in pool ``name``; how many were added."""
        ...

    def removable(self, observed: Observed, nodes: Iterable[str]) -> list[str]:
        """Those of ``nodes`` the scaler may drain by its own choice."""
        ...

    async def mark_retiring(self, node: str, reason: str) -> bool:
        """Tag an instance about to be drained by the scaler's own choice."""
        ...

    async def drain(self, ci: ContainerInstance, reason: str) -> bool:
        """Drain an instance; False if that failed."""
        ...

    async def empty(self, ci: ContainerInstance | None) -> bool:
        """Whether a drained instance holds no task of any status."""
        ...

    async def retire(self, node: str, pool: str, reason: str, observed: Observed) -> bool:
        """Terminate a drained instance of a pool, its desired capacity decremented."""
        ...

    async def terminate(self, node: str, reason: str, now: float) -> bool:
        """Terminate an instance no group owns."""
        ...

    async def lower_fleet(self, fleet: str, target: float) -> bool:
        """Lower a Spot Fleet's target capacity without letting it stop an instance itself."""
        ...


class ServiceSurges(Protocol):
    """The roll's pre-drain surges: services' counts raised (each marked on its service first)
    and set back (:mod:`scaler.aws.surges`)."""

    leader: Leader  # checked before every call that changes something

    async def read(self, names: Sequence[str]) -> dict[str, Deployment] | None:
        """The services among ``names`` with their marks; None if they cannot be read."""
        ...

    async def raise_count(self, service: str, mark: SurgeMark, why: str) -> bool:
        """Mark the surge on the service, then raise its count to ``mark.raised``."""
        ...

    async def set_back(self, service: str, desired: int | None, why: str) -> bool:
        """Set the count back to ``desired`` (None: leave it), then remove the mark."""
        ...


class Consolidation(Protocol):
    """Scale-in by consolidation: which instances can go, their tasks fitting elsewhere."""

    drained_at: list[float]  # when it drained, for the hourly budget

    def due(self, now: float) -> bool: ...

    def stands_until(self, now: float) -> float:
        """Until when a plan on unchanged inputs comes out as the last one did, as a plan made
        (or found standing) at ``now`` says; else the next due time."""
        ...

    async def plan(
        self,
        snap: CapacitySnapshot,
        facts: dict[str, Ec2Facts],
        memory: CapacityMemory,
        ours: frozenset[str],
        seen: Hashable = None,
    ) -> ConsolidationPlan:
        """The instances to drain now; ``ours``: those it is draining already; ``seen``: the
        capacity reader's fingerprint of the cluster (:mod:`scaler.aws.read_memory`; None:
        unknown), under which a plan that chose nothing need not be made again at once."""
        ...


class MigratedFleets(Protocol):
    """The Spot Fleets being moved off, as one migration step read them."""

    @property
    def facts(self) -> dict[str, Ec2Facts]: ...

    @property
    def remaining(self) -> frozenset[str]:
        """Instances still to be replaced."""
        ...


class FleetMigration(Protocol):
    """The move off Spot Fleets into the scaler's groups."""

    @property
    def state(self) -> RollState: ...

    async def step(
        self,
        observed: Observed,
        actuator: Actuator,
        memory: CapacityMemory,
        capacity: CapacityPolicy,
        blocked: frozenset[str],
    ) -> MigratedFleets | None:
        """Launch, drain, retire; the fleets as read, or None if they could not be."""
        ...
