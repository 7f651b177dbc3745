"""Reservation advice applied in the simulated world: ``SCALER_SIM_APPLY_ADVICE``.

With the setting on (a scenario's ``[settings]``, or the ``SCALER_*`` variables given to
``scaler simulate`` when the shipped scaler runs), the world measures each service's CPU use
every ``PERIOD`` seconds as ECS's ``CPUUtilization`` service metric would: the mean use of its
running tasks on instances (a task uses ``ServiceSpec.cpu_use`` of its reservation). At each
deployment of the scenario (a ``deploy`` event), the deployed service's CPU reservation becomes
the one :func:`scaler.plan.advice.advise_one` advises from those measurements, with the
``SCALER_ADVICE_*`` settings; its tasks keep using the same CPU (``cpu_use`` is scaled to the
new reservation), and the new revision's tasks are placed with the new reservation. The world
models no memory use, so only CPU is advised. The operator's act, simulated: the scaler itself
never changes a reservation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from scaler.ecs.cluster import RUNNING, ServiceState
from scaler.plan.advice import CPU, Advice, AdvicePolicy, Measured, advise_one
from scaler.sim.settings_file import file_settings

if TYPE_CHECKING:
    from scaler.sim.engine import Sim

PERIOD = 60.0  # seconds between measurements (ECS's service metrics: one a minute)


def advising(table: Mapping[str, Any]) -> Advising | None:
    """The world's advice from a scenario's ``[settings]`` table (None: not applied)."""
    if not any(key.upper() == "SCALER_SIM_APPLY_ADVICE" for key in table):
        return None
    settings = file_settings(table)
    if not settings.sim_apply_advice:
        return None
    return Advising(
        AdvicePolicy(
            over=settings.advice_over,
            under=settings.advice_under,
            headroom=settings.advice_headroom,
            min_samples=settings.advice_min_samples,
            min_window=settings.advice_min_window,
        )
    )


class Advising:
    def __init__(self, policy: AdvicePolicy) -> None:
        self.policy = policy
        self.samples: dict[str, list[float]] = {}
        self.applied: list[tuple[float, Advice]] = []  # (when, the advice applied)

    def start(self, sim: Sim) -> None:
        sim.at(sim.now + PERIOD, self._measure, sim)

    def _measure(self, sim: Sim) -> None:
        for name, state in sim.cluster.services.items():
            uses = [
                t.service.cpu * t.service.cpu_use
                for t in state.tasks.values()
                if t.state == RUNNING and t.instance is not None
            ]
            if uses:
                self.samples.setdefault(name, []).append(sum(uses) / len(uses))
        sim.at(sim.now + PERIOD, self._measure, sim)

    def deploy(self, state: ServiceState, now: float) -> None:
        """Give the service about to be deployed the advised CPU reservation, if any."""
        spec = state.spec
        samples = tuple(self.samples.get(spec.name, ()))
        measured = Measured(spec.name, CPU, spec.cpu, samples, len(samples) * PERIOD)
        advice = advise_one(measured, self.policy)
        if advice is None:
            return
        use = spec.cpu * spec.cpu_use
        state.spec = replace(spec, cpu=advice.advised, cpu_use=use / advice.advised)
        self.applied.append((now, advice))
