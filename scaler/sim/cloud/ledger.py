"""What a fault campaign checks, recorded as the shipped scaler's run goes.

The invariants an operator relies on are about moments: how many instances a pool had when the
scaler launched one more, how many of its own drains were moving tasks when it started another,
how long an instance stayed DRAINING and whether the scaler said why. A :class:`Recorder` notes
those moments from where they happen, without changing what happens:

- :class:`RecordedWorld`, the engine's instances as EC2's (:class:`EngineWorld`), notes each
  launch (a template pool's size against the plan being carried out and its most instances at
  once) and each DRAINING spell (from the drain to ACTIVE again or gone);
- :class:`Watched` wraps a simulated service and notes every write naming another cluster or one
  of its instances;
- :meth:`Recorder.handler` hears the scaler's log: its drains by its own choice (checked against
  the disruption budget at that moment) and its warnings naming instances (a DRAINING spell past
  the drain timeout needs one).

:meth:`Recorder.ledger` gives the frozen :class:`Ledger` an
:class:`~scaler.sim.cloud.shipped.Outcome` carries; :mod:`scaler.sim.cloud.campaign` judges it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaler.aws.templates import POOL
from scaler.ecs.cluster import ACTIVE, DRAINING, PENDING, RUNNING, Instance
from scaler.sim.cloud.engine_world import EngineWorld
from scaler.sim.cloud.transport import Service
from scaler.sim.cloud.world import PENDING as EC2_PENDING
from scaler.sim.cloud.world import RUNNING as EC2_RUNNING
from scaler.sim.cloud.world import Ec2Instance

# the drains the disruption budget bounds (``SCALER_DISRUPTION_BUDGET``): recommendations,
# rolls, consolidation, migration. Warnings, lifecycle actions and state changes do not wait;
# the return to spot is bounded by ``SCALER_REVERT_BATCH`` instead
OWN_CHOICE = frozenset({"rebalance_recommendation", "drift", "consolidation", "migration"})
READS = ("Describe", "List", "Get", "Receive")


@dataclass(frozen=True)
class Ledger:
    """What happened, as the invariants need it (times are the loop's)."""

    # (when, instance, its service tasks) for each instance the scaler terminated or deregistered
    removals: tuple[tuple[float, str, int], ...] = ()
    # (when, pool, its instances after the launch, the largest target a replica's plan set)
    launches: tuple[tuple[float, str, int, int], ...] = ()
    peaks: tuple[tuple[str, int], ...] = ()  # (template pool, most instances at once)
    # (when, instance drained by the scaler's choice, own drains moving tasks then, budget)
    own_drains: tuple[tuple[float, str, int, int], ...] = ()
    drains: tuple[tuple[str, float, float], ...] = ()  # (instance, DRAINING from, until)
    # (when, instance) for each warning of the scaler's log naming an instance
    warned_about: tuple[tuple[float, str], ...] = ()
    touched: tuple[str, ...] = ()  # "service:Operation name" writes naming another cluster's


@dataclass
class Recorder:
    """Notes what :class:`Ledger` holds; ``targets``: each template pool's largest target in
    the plans the replicas carry out now; ``share``: ``SCALER_DISRUPTION_BUDGET``."""

    targets: Callable[[], Mapping[str, int]] = dict
    share: float = 0.1
    cluster: str = ""
    world: RecordedWorld | None = None
    foreign: Callable[[], Iterable[str]] = tuple  # instance ids of other clusters seen so far
    launches: list[tuple[float, str, int, int]] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)
    own_drains: list[tuple[float, str, int, int]] = field(default_factory=list)
    drains: list[tuple[str, float, float]] = field(default_factory=list)
    draining: dict[str, float] = field(default_factory=dict)  # instance -> DRAINING since
    reasons: dict[str, str] = field(default_factory=dict)  # instance -> its drain's reason
    warned_about: list[tuple[float, str]] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)

    def ledger(self, end: float, removals: Iterable[tuple[float, str, int]]) -> Ledger:
        """What was recorded; spells still DRAINING end at ``end``; ``removals``: the engine's
        (:attr:`scaler.sim.engine.Sim.removals`)."""
        spells = [*self.drains, *((i, since, end) for i, since in self.draining.items())]
        return Ledger(
            tuple(removals),
            tuple(self.launches),
            tuple(sorted(self.peaks.items())),
            tuple(self.own_drains),
            tuple(sorted(spells)),
            tuple(self.warned_about),
            tuple(self.touched),
        )

    # -- the log ------------------------------------------------------------------------------

    def handler(self) -> logging.Handler:
        recorder = self

        class Hears(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                recorder.heard(record)

        return Hears(logging.INFO)

    def heard(self, record: logging.LogRecord) -> None:
        world = self.world
        if world is None:
            return
        now = world.sim.now
        named = _instances(record)
        if record.levelno >= logging.WARNING:
            self.warned_about.extend((now, i) for i in named)
        if record.getMessage() != "drained" or not named:
            return
        reason = str(getattr(record, "reason", ""))
        iid = named[0]
        self.reasons[iid] = reason
        if reason in OWN_CHOICE:
            members = world.members()
            moving = sum(1 for m in members if self._own(m) and _busy(m))
            self.own_drains.append((now, iid, moving, _budget(self.share, len(members))))

    def _own(self, inst: Instance) -> bool:
        """Is ``inst`` DRAINING by the scaler's choice alone (no spot warning since)?"""
        world = self.world
        doomed = world is not None and inst.id in world.sim.doomed
        return inst.status == DRAINING and self.reasons.get(inst.id) in OWN_CHOICE and not doomed

    # -- the world ----------------------------------------------------------------------------

    def instance_event(self, kind: str, inst: Instance, now: float) -> None:
        if kind == "drain":
            self.draining.setdefault(inst.id, now)
        elif kind in ("activate", "terminate") and inst.id in self.draining:
            self.drains.append((inst.id, self.draining.pop(inst.id), now))

    def launched(self, world: RecordedWorld, record: Ec2Instance) -> None:
        pool = record.tags.get(POOL)
        if pool is None:
            return
        alive = [r for r in world.alive() if r.tags.get(POOL) == pool]
        self.peaks[pool] = max(self.peaks.get(pool, 0), len(alive))
        counted = [r for r in alive if world.counted(r.id)]
        target = self.targets().get(pool)
        if target is not None:
            self.launches.append((world.sim.now, pool, len(counted), target))

    def wrote(self, service: str, operation: str, params: Mapping[str, Any]) -> None:
        if operation.startswith(READS):
            return
        others = set(self.foreign())
        for text in _strings(params):
            if text.rsplit("/", 1)[-1] in others or _other_cluster(text, self.cluster):
                self.touched.append(f"{service}:{operation} {text}")


class RecordedWorld(EngineWorld):
    """:class:`EngineWorld` that tells ``recorder`` of launches, drains and terminations."""

    recorder: Recorder

    def attach(self, recorder: Recorder) -> None:
        self.recorder = recorder
        recorder.world = self

    def mirror(self, kind: str, obj: object) -> None:
        if isinstance(obj, Instance) and hasattr(self, "recorder"):
            self.recorder.instance_event(kind, obj, self.sim.now)
        super().mirror(kind, obj)

    def launch(self, *args: Any, **kwargs: Any) -> Ec2Instance:
        record = super().launch(*args, **kwargs)
        if hasattr(self, "recorder"):
            self.recorder.launched(self, record)
        return record

    def alive(self) -> list[Ec2Instance]:
        return [r for r in self.instances.values() if r.state in (EC2_PENDING, EC2_RUNNING)]

    def counted(self, iid: str) -> bool:
        """Does the plan count ``iid`` in its pool's size: not doomed, not DRAINING."""
        model = self.sim.instance(iid)
        doomed = iid in self.sim.doomed
        return not doomed and (model is None or model.status != DRAINING)

    def members(self) -> list[Instance]:
        """The cluster's registered container instances."""
        return [i for i in self.sim.cluster.instances.values() if i.status in (ACTIVE, DRAINING)]


class Watched:
    """A simulated service whose writes ``recorder`` reads first."""

    def __init__(self, name: str, service: Service, recorder: Recorder) -> None:
        self.name, self.service, self.recorder = name, service, recorder

    async def answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.recorder.wrote(self.name, operation, params)
        return await self.service.answer(operation, params)


def _busy(inst: Instance) -> int:
    """Service tasks on ``inst`` that run or are about to (daemons are the instance's own)."""
    return sum(
        1 for t in inst.tasks.values() if t.state in (PENDING, RUNNING) and not t.service.daemon
    )


def _instances(record: logging.LogRecord) -> list[str]:
    """The instance ids a log record names."""
    one = getattr(record, "instance_id", None)
    many = getattr(record, "instance_ids", None) or []
    ref = getattr(record, "container_instance", None)
    found = [str(one)] if one else []
    found += [str(i) for i in many]
    if ref and not found:
        found.append(str(ref).rsplit("/", 1)[-1])
    return found


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _other_cluster(text: str, cluster: str) -> bool:
    """Is ``text`` an ECS ARN of another cluster (or of a resource in one)?"""
    if not text.startswith("arn:aws:ecs:") or not cluster:
        return False
    rest = text.split(":", 5)[-1]  # cluster/NAME, container-instance/NAME/ID, ...
    parts = rest.split("/")
    return len(parts) > 1 and parts[0] != "task-definition" and parts[1] != cluster


def _budget(share: float, live: int) -> int:
    """The disruption budget as documented for ``SCALER_DISRUPTION_BUDGET``: ``share`` of the
    live instances, at least one (none of a single instance). Written out here, not imported:
    a check that called the scaler's own arithmetic would agree with any bug in it."""
    return max(1, math.floor(share * live)) if live > 1 else 0
