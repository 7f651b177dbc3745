"""The shipped scaler in the simulator, for tests that look inside the run: the scaler
``scaler run`` builds, on virtual time, against the simulated AWS
(:func:`scaler.sim.cloud.shipped.run_shipped` with ``capacity``), answering the engine it ran
against and the engine's trace besides the :class:`~scaler.sim.cloud.shipped.Outcome`.

A test may hand its own engine class (a :class:`~scaler.sim.engine.Sim` subclass that records
something, or sets the cluster up before the scaler starts) and the scaler's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from scaler.settings import Settings
from scaler.sim.cloud import shipped
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.shipped import Outcome, run_shipped
from scaler.sim.engine import Sim
from scaler.sim.run import scaler_settings
from scaler.sim.scenario import Scenario
from scaler.sim.settings_file import field_values, world_settings

Record = dict[str, Any]


@dataclass(frozen=True)
class ShippedRun:
    outcome: Outcome
    sim: Sim  # the engine the scaler ran against, at the end of the run
    trace: list[Record]  # the engine's trace: market events, signals, the scaler's actions
    settings: Settings  # what the scaler ran with

    @property
    def figures(self) -> dict[str, Any]:
        return self.outcome.figures

    def times(self, what: str) -> dict[str, float]:
        """Instance -> when the trace first noted ``what`` for it (e.g. "drain", "warning")."""
        found: dict[str, float] = {}
        for record in self.trace:
            if record["what"] == what and record.get("instance") is not None:
                found.setdefault(record["instance"], record["t"])
        return found


def run_scaler(
    scenario: Scenario,
    seed: int,
    settings: Mapping[str, Any] | None = None,
    *,
    engine: type[Sim] = Sim,
    ec2: type[Ec2] = Ec2,
) -> ShippedRun:
    """Run ``scenario`` at ``seed`` with the shipped scaler topping up capacity, its settings
    those ``scaler simulate`` gives it (the scenario's ``[settings]``) overridden by
    ``settings``, against an ``engine`` and the simulated EC2 ``ec2``."""
    values = {**field_values(scaler_settings(scenario)), **(settings or {})}
    trace: list[Record] = []

    def build(scenario: Scenario, policy: Any, seed: int, **options: Any) -> Sim:
        return engine(scenario, policy, seed, **options)

    with _replaced("Sim", build), _replaced("Ec2", ec2), settings_seen() as seen, _quiet():
        outcome = run_shipped(scenario, seed, values, capacity=True, trace=trace.append)
    assert outcome.engine is not None
    return ShippedRun(outcome, outcome.engine, trace, seen[0])


@contextmanager
def settings_seen() -> Iterator[list[Settings]]:
    """Every :class:`Settings` a shipped scaler is built with meanwhile, in order."""
    seen: list[Settings] = []

    def load(values: dict[str, Any]) -> Settings:
        seen.append(world_settings(values))
        return seen[-1]

    with _replaced("world_settings", load):
        yield seen


@contextmanager
def _replaced(name: str, value: Any) -> Iterator[None]:
    """:mod:`scaler.sim.cloud.shipped`'s ``name`` is ``value`` for the while."""
    before = getattr(shipped, name)
    setattr(shipped, name, value)
    try:
        yield
    finally:
        setattr(shipped, name, before)


@contextmanager
def _quiet() -> Iterator[None]:
    """The scaler's logs are the run's, not the test's."""
    logger = logging.getLogger("scaler")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def raises_in(records: list[Record]) -> list[Record]:
    """The trace's desired counts raised."""
    return [r for r in records if r["what"] == "set_desired" and r["after"] > r["before"]]


def lowerings_in(records: list[Record]) -> list[Record]:
    """The trace's desired counts lowered."""
    return [r for r in records if r["what"] == "set_desired" and r["after"] < r["before"]]


def counts_as_scenario(scenario: Scenario, outcome: Outcome) -> None:
    """No desired count is left raised at the end: each as ``scenario`` sets it."""
    assert outcome.engine is not None
    wanted = {s.name: s.desired for s in scenario.services if s.overflow_of is None}
    now = {n: outcome.engine.cluster.services[n].spec.desired for n in wanted}
    assert now == wanted
