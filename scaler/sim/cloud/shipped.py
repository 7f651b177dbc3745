"""The shipped scaler in the simulated world: the objects ``scaler run`` builds, unchanged, on
virtual time, against simulated AWS services backed by the simulator's engine.

:func:`run_shipped` builds the world (the engine on the loop, SQS, ECS and DynamoDB over it,
each signal published into the scaler's queue as EventBridge sends it), starts
:class:`scaler.loop.Scaler` with the given settings and no HTTP server (the world has no
sockets), drives the scenario to its horizon, and returns the engine's figures and the AWS calls
the scaler made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaler.aws.clients import AwsTarget
from scaler.loop import Scaler
from scaler.settings import load_settings
from scaler.sim.cloud.driver import LoopDriver, Publisher
from scaler.sim.cloud.dynamodb import Dynamodb
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.limits import Limits
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import LoopClock, run
from scaler.sim.engine import EPOCH, Sim
from scaler.sim.scenario import Scenario

CLUSTER = "sim"
TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))
LEASES = "scaler-leases"


@dataclass(frozen=True)
class Outcome:
    figures: dict[str, Any]
    calls: dict[str, int]  # "service:Operation" -> calls the scaler made
    signals: int  # events published into the scaler's queue
    throttled: dict[str, int]  # "service:Operation" -> answers throttled


def run_shipped(
    scenario: Scenario,
    seed: int,
    settings: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> Outcome:
    """Run ``scenario`` at ``seed`` with the shipped scaler acting (see the module docstring),
    under AWS's latency and throttling (``limits``; by default drawn from ``seed``)."""
    world_limits = limits if limits is not None else Limits(seed=seed)
    return run(_world(scenario, seed, dict(settings or {}), world_limits), seed=seed)


async def _world(
    scenario: Scenario, seed: int, overrides: dict[str, Any], limits: Limits
) -> Outcome:
    loop = asyncio.get_running_loop()
    sqs, dynamodb = Sqs(loop.time), Dynamodb()
    dynamodb.table(LEASES)
    dlq = (await sqs.create_queue(QueueName="events-dlq"))["QueueUrl"]
    redrive = f'{{"deadLetterTargetArn": "{sqs.queues[dlq].arn}", "maxReceiveCount": 5}}'
    url = (await sqs.create_queue(QueueName="events", Attributes={"RedrivePolicy": redrive}))[
        "QueueUrl"
    ]
    publisher = Publisher(sqs, url)
    sim = Sim(scenario, publisher, seed)
    driver = LoopDriver(sim)
    services = {"sqs": sqs, "ecs": Ecs(driver, CLUSTER), "dynamodb": dynamodb}
    world = SimulatedAws(services, limits)
    settings = load_settings(**{"cluster": CLUSTER, "queue_url": url, **overrides})
    scaler = Scaler(settings, TARGET, LoopClock(EPOCH), instrument=world.install, serve_http=False)
    stop = asyncio.Event()
    running = asyncio.create_task(scaler.run(stop))
    await driver.run(asyncio.Event())
    stop.set()
    await running
    calls = {f"{s}:{op}": n for (s, op), n in sorted(world.calls.items())}
    return Outcome(sim.finish(), calls, len(publisher.published), dict(limits.throttled))
