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
received, the foreign warnings, the AWS calls by operation, and the wall seconds; per pattern
the extra AWS calls and wall milliseconds per foreign warning (the difference from the run
without them, divided by their number).
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
    began = time.perf_counter()
    outcome = shipped.run_shipped(builtin("storm"), seed)
    seconds = time.perf_counter() - began
    warnings = sum(1 for _ in outcome.warned)
    return {
        "own_spot_warnings": warnings,
        "foreign_spot_warnings": warnings * others,
        "messages_received": outcome.calls.get("sqs:ReceiveMessage", 0),
        "aws_calls": sum(outcome.calls.values()),
        "calls": outcome.calls,
        "wall_seconds": round(seconds, 3),
        "availability": outcome.figures["availability"],
    }


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
    }


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
