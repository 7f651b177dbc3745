"""The engine on the loop's virtual time: the same world, event for event, as the engine run on
its own, with every signal in the scaler's queue as EventBridge sends it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from scaler.events import ServicePlacementFailure, Signal, parse_event
from scaler.sim.builtin import builtin
from scaler.sim.cloud.driver import LoopDriver, Publisher, envelope
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from scaler.sim.scenario import Scenario

SCENARIO = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)


class Recorder:
    """The engine's policy on its own: records the signals, does nothing."""

    name = "scaler"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def start(self, sim: Sim) -> None:
        pass

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        event = envelope(sim, signal, "prod")
        if event is not None:
            self.events.append(event)


def _alone() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    recorder = Recorder()
    figures = Sim(SCENARIO, recorder, seed=3).run()
    return recorder.events, figures


def _on_the_loop(
    scenario: Scenario = SCENARIO,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str], float]:
    async def main() -> tuple[list[dict[str, Any]], dict[str, Any], list[str], float]:
        loop = asyncio.get_running_loop()
        sqs = Sqs(loop.time)
        url = (await sqs.create_queue(QueueName="events"))["QueueUrl"]
        publisher = Publisher(sqs, url, cluster="prod")
        sim = Sim(scenario, publisher, seed=3)
        await LoopDriver(sim).run(asyncio.Event())
        bodies = [m.body for m in sqs.queues[url].messages.values()]
        return publisher.published, sim.finish(), bodies, loop.time()

    return run(main())


def test_the_loop_driven_engine_meets_the_same_world() -> None:
    events, figures = _alone()
    published, loop_figures, _bodies, ended = _on_the_loop()
    assert events, "the storm warned some instances"
    assert published == events
    assert loop_figures == figures
    assert ended == SCENARIO.hours * 3600


def test_every_signal_waits_in_the_queue_as_an_eventbridge_event() -> None:
    published, _, bodies, _ = _on_the_loop()
    assert [json.loads(b) for b in bodies] == published
    kinds = {type(parse_event(b)).__name__ for b in bodies}
    assert "SpotInterruption" in kinds


def test_a_task_ecs_cannot_place_is_told_as_a_service_action() -> None:
    """Nothing adds the room large tasks need: a service that had every task placed and has
    one ECS cannot place is told of, for the cluster, with the resource it lacked."""
    scenario = builtin("big-tasks").with_hours(1.0)
    _, _, bodies, _ = _on_the_loop(scenario)
    failures = [f for f in map(parse_event, bodies) if isinstance(f, ServicePlacementFailure)]
    assert failures, "large tasks were left without room"
    services = {s.name for s in scenario.services}
    for failure in failures:
        assert failure.cluster_arn.endswith(":cluster/prod")
        assert failure.service_arn.rsplit("/", 1)[-1] in services
        assert failure.reason in ("RESOURCE:CPU", "RESOURCE:MEMORY")
