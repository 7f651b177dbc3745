"""The simulator's engine on the event loop's virtual time, with its signals sent as AWS sends
them.

:class:`~scaler.sim.engine.Sim` is a discrete-event engine: the ECS model, the spot market and
the accounting advance from one scheduled event to the next. Here that engine runs on the loop
the shipped scaler runs on: :class:`LoopDriver` sleeps (in virtual time) until the engine's next
event, processes every event due, and sleeps again. A simulated AWS service that reads or
changes the world first brings the engine up to the loop's time (:meth:`LoopDriver.sync`) and,
after a change, wakes the driver (:meth:`LoopDriver.poke`), since the change may have scheduled
an event sooner than the one it was sleeping for. So the scaler's calls and the world's events
interleave in one order, the same at every run.

:class:`Publisher` is the engine's policy for the shipped scaler: it decides nothing. Each signal
the engine raises (a spot interruption warning, a rebalance recommendation, a state change) goes
into the scaler's SQS queue in EventBridge's envelope, stamped with the simulated wall time, which
is the only way AWS tells the scaler anything. Instance-level events cannot be filtered by
cluster, so a share of warnings for other clusters' instances can be sent along.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from scaler import testbed
from scaler.events import (
    InstanceStateChange,
    RebalanceRecommendation,
    ServicePlacementFailure,
    Signal,
    SpotInterruption,
)
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.engine import Sim


class LoopDriver:
    """Runs ``sim`` on the running loop's time, from :meth:`run` until its horizon."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self._waiter: asyncio.Future[None] | None = None  # resolved by the engine's next event
        self._stepping = False

    def sync(self) -> None:
        """Process every engine event due by the loop's time (nothing, when called from within
        an event the engine is processing: the engine is where it must be)."""
        if self._stepping:
            return
        self._stepping = True
        try:
            self.sim.step_until(asyncio.get_running_loop().time())
        finally:
            self._stepping = False

    def poke(self) -> None:
        """The world changed: the driver looks at the engine's next event again."""
        _resolve(self._waiter)

    async def run(self, stop: asyncio.Event) -> None:
        """Begin the scenario and drive it until its horizon or ``stop``. Between events it
        waits on a bare future and a timer (not ``wait_for``: the driver waits after nearly
        every call the scaler makes, and a task per wait is most of what the wait costs)."""
        loop = asyncio.get_running_loop()
        self.sim.begin()
        while not stop.is_set() and loop.time() < self.sim.horizon:
            self.sync()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_at(max(loop.time(), self.sim.next_due()), _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        self.sync()


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Publisher:
    """The engine's policy when the shipped scaler acts: signals go to its queue, as events."""

    def __init__(
        self,
        sqs: Sqs,
        queue_url: str,
        foreign_share: float = 0.0,
        seed: int = 0,
        foresight: float = 0.0,
        cluster: str = "",
    ) -> None:
        self._sqs = sqs
        self._cluster = cluster  # the cluster ECS's events name
        # the engine tells of every interruption this long ahead, as a rebalance recommendation
        # (the oracle: a bound on what early warning can buy)
        self.foresight = foresight
        self.name = "oracle" if foresight > 0 else "scaler"
        self.new_image: Callable[[str], None] | None = None  # registers a template version
        self._queue_url = queue_url
        self._foreign_share = foreign_share  # warnings for other clusters' instances, per ours
        self._rng = random.Random(f"foreign:{seed}")
        self.foreign = 0
        self.published: list[dict[str, Any]] = []
        self.timed: list[tuple[dict[str, Any], float]] = []  # (event, when it was sent)
        self.registered: set[str] = set()  # instances ACTIVE or DRAINING when warned

    def start(self, sim: Sim) -> None:
        pass

    def on_new_image(self, sim: Sim, image: str) -> None:
        """A new image to launch from: the operator's new launch template versions."""
        if self.new_image is not None:
            self.new_image(image)

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        event = envelope(sim, signal, self._cluster)
        if event is None:
            return
        self.published.append(event)
        self.timed.append((event, sim.now))
        inst = sim.instance(getattr(signal, "instance_id", ""))
        if (
            isinstance(signal, SpotInterruption)
            and inst is not None
            and inst.registered_at is not None
        ):
            self.registered.add(inst.id)
        self._sqs.deliver(self._queue_url, json.dumps(event))
        if isinstance(signal, SpotInterruption) and self._rng.random() < self._foreign_share:
            self.foreign += 1  # the account's other clusters are interrupted too
            foreign = f"i-0f{self.foreign:015x}"
            other = testbed.spot_warning(foreign, sim.wall(), f"other-{self.foreign}")
            self._sqs.deliver(self._queue_url, json.dumps(other))


def envelope(sim: Sim, signal: Signal, cluster: str = "") -> dict[str, Any] | None:
    """``signal`` as EventBridge delivers it, ECS's naming ``cluster`` (None: a signal AWS
    would not send)."""
    when, event_id = sim.wall(), signal.event_id
    if isinstance(signal, SpotInterruption):
        return testbed.spot_warning(signal.instance_id, when, event_id)
    if isinstance(signal, RebalanceRecommendation):
        return testbed.rebalance_recommendation(signal.instance_id, when, event_id)
    if isinstance(signal, InstanceStateChange):
        return testbed.state_change(signal.instance_id, signal.state, when, event_id)
    if isinstance(signal, ServicePlacementFailure):  # the engine names the service alone
        service = signal.service_arn.rsplit("/", 1)[-1]
        return testbed.placement_failure(cluster, service, signal.reason or "", when, event_id)
    return None
