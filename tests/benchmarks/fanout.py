"""Benchmark: what the regional event fan-out costs one scaler among many clusters.

EventBridge cannot filter instance-level events (spot warnings, rebalance recommendations,
state changes) by cluster, so with one scaler per cluster every queue in the region receives
every cluster's events. This runs the shipped scaler (:class:`scaler.loop.Scaler`, the objects
``scaler run`` builds) in the simulated world (:mod:`scaler.sim.cloud`) through the ``storm``
built-in, once with only its own cluster's events and once more per pattern with ``others``
other clusters' spot warnings added for each of its own:

- ``coincident``: the storm reclaims the same pools in every cluster: each warning of ours comes
  with ``others`` foreign ones at the same moment;
- ``spread``: the other clusters' warnings arrive at random within ``SPREAD`` seconds after.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.fanout              # 29 other clusters (30 in all)
    .venv/bin/python -m tests.benchmarks.fanout --others 9   # 10 in all

It prints JSON (nothing is asserted, wall time never fails anything): per run the messages
received, the foreign warnings, the AWS calls by operation, the wall seconds, the events by
outcome and the virtual seconds from receiving a message to its outcome by kind (the scaler's
own ``scaler_events_total`` and ``scaler_event_handling_seconds``, under AWS's modelled latency);
per pattern the extra AWS calls, wall milliseconds and handling milliseconds per foreign warning
(the difference from the run without them, divided by their number).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
from typing import Any

import scaler.sim.cloud.shipped as shipped
from scaler import testbed
from scaler.events import SpotInterruption
from scaler.loop import Scaler
from scaler.sim.builtin import builtin
from scaler.sim.cloud.driver import Publisher
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.engine import Sim

SPREAD = 120.0  # seconds over which the other clusters' warnings arrive, pattern `spread`


class FanOut(Publisher):
    """The world's own events, and ``others`` other clusters' spot warnings for each of its."""

    others = 0
    spread = False

    def __init__(self, sqs: Sqs, queue_url: str, foreign_share: float = 0.0, seed: int = 0) -> None:
        super().__init__(sqs, queue_url, 0.0, seed)
        self._spread_rng = random.Random(f"fanout:{seed}")

    def on_signal(self, sim: Sim, signal: Any) -> None:
        super().on_signal(sim, signal)
        if not isinstance(signal, SpotInterruption):
            return
        for _ in range(self.others):
            self.foreign += 1
            iid = f"i-0f{self.foreign:015x}"
            body = json.dumps(testbed.spot_warning(iid, sim.wall(), f"other-{self.foreign}"))
            if self.spread:
                delay = self._spread_rng.uniform(0.0, SPREAD)
                asyncio.get_running_loop().call_later(delay, self._deliver, body)
            else:
                self._deliver(body)

    def _deliver(self, body: str) -> None:
        self._sqs.deliver(self._queue_url, body)


def _run(others: int, spread: bool, seed: int) -> dict[str, Any]:
    FanOut.others, FanOut.spread = others, spread
    setattr(shipped, "Publisher", FanOut)  # noqa: B010 (the world builds its publisher by this name)
    scalers: list[Scaler] = []
    build = shipped.ShippedWorld._scaler

    def keep(world: shipped.ShippedWorld, index: int) -> Scaler:
        scalers.append(build(world, index))
        return scalers[-1]

    setattr(shipped.ShippedWorld, "_scaler", keep)  # noqa: B010 (to read its metrics after)
    try:
        began = time.perf_counter()
        outcome = shipped.run_shipped(builtin("storm"), seed)
        seconds = time.perf_counter() - began
    finally:
        setattr(shipped.ShippedWorld, "_scaler", build)  # noqa: B010
    warnings = sum(1 for _ in outcome.warned)
    return {
        "own_spot_warnings": warnings,
        "foreign_spot_warnings": warnings * others,
        "messages_received": outcome.calls.get("sqs:ReceiveMessage", 0),
        "aws_calls": sum(outcome.calls.values()),
        "calls": outcome.calls,
        "wall_seconds": round(seconds, 3),
        "availability": outcome.figures["availability"],
        # our own warnings: does the fan-out delay their drains?
        "own_warning_to_draining_seconds": _latency(outcome),
        **_handling(scalers),
    }


def _latency(outcome: shipped.Outcome) -> dict[str, float]:
    """Warning to DRAINING of our warned instances; those drained before their warning (on a
    rebalance recommendation) apart."""
    both = [(at, outcome.drained[i]) for i, at in outcome.warned.items() if i in outcome.drained]
    waits = sorted(drained - at for at, drained in both if drained >= at)
    figures = {"drained_before_the_warning": float(len(both) - len(waits))}
    if waits:
        mean = sum(waits) / len(waits)
        figures.update(after=len(waits), mean=round(mean, 3), max=round(waits[-1], 3))
    return figures


def _handling(scalers: list[Scaler]) -> dict[str, Any]:
    """Events by outcome, and the mean virtual seconds from receiving a message to its outcome,
    by kind, as the scalers' own metrics count them."""
    outcomes: dict[str, float] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for scaler in scalers:
        # these two only: the registry's callback gauges read a clock that has stopped
        for family in [*scaler.metrics.events.collect(), *scaler.metrics.event_seconds.collect()]:
            for sample in family.samples:
                if sample.name == "scaler_events_total":
                    key = sample.labels["outcome"]
                    outcomes[key] = outcomes.get(key, 0) + sample.value
                elif sample.name == "scaler_event_handling_seconds_sum":
                    kind = sample.labels["kind"]
                    sums[kind] = sums.get(kind, 0) + sample.value
                elif sample.name == "scaler_event_handling_seconds_count":
                    kind = sample.labels["kind"]
                    counts[kind] = counts.get(kind, 0) + sample.value
    handling = {
        k: {"count": counts[k], "seconds": round(sums[k], 4), "mean": round(sums[k] / counts[k], 4)}
        for k in sorted(counts)
        if counts[k]
    }
    return {"events_by_outcome": outcomes, "handling_seconds_by_kind": handling}


def _per_foreign(base: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    foreign = max(1, run["foreign_spot_warnings"])
    operations = set(base["calls"]) | set(run["calls"])
    extra = {
        op: round((run["calls"].get(op, 0) - base["calls"].get(op, 0)) / foreign, 3)
        for op in sorted(operations)
    }
    return {
        "aws_calls_per_foreign_warning": round((run["aws_calls"] - base["aws_calls"]) / foreign, 3),
        "by_operation": {op: v for op, v in extra.items() if v},
        "wall_ms_per_foreign_warning": round(
            1000 * (run["wall_seconds"] - base["wall_seconds"]) / foreign, 3
        ),
        # virtual seconds from receive to outcome, the foreign warnings' share of the kind's
        "handling_ms_per_foreign_warning": round(
            1000 * (_spot(run)["seconds"] - _spot(base)["seconds"]) / foreign, 2
        ),
    }


def _spot(run: dict[str, Any]) -> dict[str, float]:
    spot: dict[str, float] = run["handling_seconds_by_kind"].get("spot_interruption", {})
    return {"seconds": 0.0, **spot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--others", type=int, default=29, help="other clusters (default 29)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    base = _run(0, False, args.seed)
    coincident = _run(args.others, False, args.seed)
    spread = _run(args.others, True, args.seed)
    print(
        json.dumps(
            {
                "scenario": "storm (48 instances, 2 hours)",
                "clusters": args.others + 1,
                "seed": args.seed,
                "alone": base,
                "coincident": {**coincident, **_per_foreign(base, coincident)},
                "spread": {**spread, "spread_seconds": SPREAD, **_per_foreign(base, spread)},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
