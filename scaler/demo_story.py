"""How ``scaler demo`` explains itself: what the scaler did with each message, and what it cost.

Three pieces, read by :mod:`scaler.demo`:

- :class:`Witness` hears the scaler's own log records as they are written (the intake's outcome of
  every message, the capacity controller's decisions), so the timeline tells what the scaler did
  in its own words, without changing what the demo prints on stderr.
- :class:`Injected` names the test messages the demo puts straight on the queue (two copies of an
  event for another cluster's instance, a malformed body) and turns the scaler's outcome for each
  into a line of the timeline, up to the dead-letter queue.
- :class:`LossLedger` is the simulator's accountant keeping, per service, why each missing healthy
  task is missing, so an availability below 1 comes with who lost how many task-seconds and why.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from scaler.ecs.cluster import ServiceSpec, Task
from scaler.sim.accounting import Accountant

INTAKE = "scaler.aws.intake"
CAPACITY = "scaler.aws.capacity"


class Witness(logging.Filter):
    """Hands every record of the loggers it watches to ``listener`` as it is written; lets
    through to their handlers only those at or above ``shown`` (what the demo's log level would
    have shown anyway)."""

    def __init__(self, listener: Callable[[logging.LogRecord], None], shown: int) -> None:
        super().__init__()
        self.listener = listener
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        self.listener(record)
        return record.levelno >= self.shown


@contextmanager
def witnessing(
    listener: Callable[[logging.LogRecord], None], levels: dict[str, int]
) -> Iterator[Witness]:
    """A :class:`Witness` on each logger of ``levels``, at that level, for the block's length."""
    witness = Witness(listener, logging.getLogger().getEffectiveLevel())
    before = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).addFilter(witness)
    try:
        yield witness
    finally:
        for name, level in before.items():
            logging.getLogger(name).removeFilter(witness)
            logging.getLogger(name).setLevel(level)


OUTCOMES = {
    "other_cluster": "acknowledged (deleted) and counted as other_cluster: not an instance of "
    "this cluster",
    "duplicate": "dropped as duplicate (deleted): its event id was handled already",
    "handled": "handled",
    "ignored": "ignored (deleted)",
}


@dataclass
class Injected:
    """The messages the demo put straight on the queue, by SQS message id."""

    names: dict[str, str] = field(default_factory=dict)  # message id -> what it is
    max_receive: int = 2
    outcomes: dict[str, str] = field(default_factory=dict)  # message id -> last outcome
    malformed: set[str] = field(default_factory=set)
    dead_lettered: bool = False

    def add(self, message_id: str, name: str, malformed: bool = False) -> None:
        self.names[message_id] = name
        if malformed:
            self.malformed.add(message_id)

    def introduce(self) -> list[str]:
        return [
            f"injected on the queue: {name} (message {mid[:8]})" for mid, name in self.names.items()
        ]

    def explain(self, record: logging.LogRecord) -> str | None:
        """A timeline line if ``record`` tells what became of an injected message."""
        mid = str(getattr(record, "message_id", ""))
        if mid not in self.names:
            return None
        name = f"{self.names[mid]} (message {mid[:8]})"
        if mid in self.malformed:
            count = int(getattr(record, "receive_count", 0))
            self.outcomes[mid] = "malformed"
            return (
                f"{name}: left on the queue for the dead-letter queue "
                f"(receive {count} of {self.max_receive}; counted as malformed)"
            )
        outcome = str(getattr(record, "outcome", ""))
        if not outcome:
            return None
        self.outcomes[mid] = outcome
        return f"{name}: {OUTCOMES.get(outcome, outcome)}"

    def arrived(self, depth: int) -> str | None:
        """A timeline line the first time the dead-letter queue holds a message."""
        if self.dead_lettered or depth <= 0:
            return None
        self.dead_lettered = True
        names = ", ".join(f"{self.names[m]} (message {m[:8]})" for m in sorted(self.malformed))
        return (
            f"{names}: moved to the dead-letter queue by the queue's redrive policy "
            f"after {self.max_receive} receives"
        )

    @property
    def settled(self) -> bool:
        return self.dead_lettered and set(self.outcomes) == set(self.names)


class LossLedger(Accountant):
    """The accountant, also keeping per service the cause of each missing healthy task (oldest
    first) and the task-seconds each cause cost."""

    def __init__(self, hot_threshold: float, why: Callable[[Task, str], str]) -> None:
        super().__init__(hot_threshold)
        self._why = why
        self.missing: dict[str, list[str]] = defaultdict(list)
        self.lost: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.tasks: dict[str, Counter[str]] = defaultdict(Counter)  # tasks, by cause
        self.specs: dict[str, ServiceSpec] = {}

    def _integrate(self, dt: float) -> None:
        super()._integrate(dt)
        if dt <= 0:
            return
        for group, desired in self.desired.items():
            causes = self.missing[group]
            for i in range(max(0, desired - self.healthy[group])):
                self.lost[group][causes[i] if i < len(causes) else "missing"] += dt

    def task_gone(self, task: Task, reason: str) -> None:
        group = task.service.group
        if task.id in self.healthy_tasks and self.healthy[group] <= self.desired.get(group, 0):
            cause = self._why(task, reason)  # the service falls short by one more task
            self.missing[group].append(cause)
            self.tasks[group][cause] += 1
            self.specs.setdefault(group, task.service)
        super().task_gone(task, reason)

    def task_healthy(self, task: Task) -> None:
        group = task.service.group
        fills = task.id not in self.healthy_tasks and self.healthy[group] < self.desired.get(
            group, 0
        )
        super().task_healthy(task)
        if fills and self.missing[group]:
            self.missing[group].pop(0)

    def explain(self) -> list[str]:
        """One line per service that lost task-seconds (how many, and why), then what let ECS
        stop tasks before their replacements were healthy."""
        lines = []
        for group in sorted(self.lost):
            seconds = sum(self.lost[group].values())
            if seconds <= 0:
                continue
            parts = [
                f"{self.tasks[group][cause]} task(s) {cause} ({secs:.1f}s)"
                if self.tasks[group][cause]
                else f"{cause} ({secs:.1f}s)"
                for cause, secs in sorted(self.lost[group].items(), key=lambda kv: -kv[1])
            ]
            lines.append(f"{group} lost {seconds:.1f} task-seconds: " + "; ".join(parts))
        by_floor: dict[int, list[str]] = defaultdict(list)
        for group in sorted(self.specs):
            if self.lost[group] and self.specs[group].min_healthy_percent < 100:
                by_floor[self.specs[group].min_healthy_percent].append(group)
        for floor, groups in sorted(by_floor.items()):
            lines.append(
                f"why: with minimumHealthyPercent {floor} ({', '.join(groups)}), ECS stops the "
                "tasks on a draining instance without waiting for their replacements, as long "
                f"as {floor}% of the service stays healthy; at 100 it starts the replacements "
                "first"
            )
        return lines

    @property
    def missing_seconds(self) -> float:
        return sum(sum(causes.values()) for causes in self.lost.values())
