"""Fault campaigns: the shipped scaler in the simulated world under random faults, many seeds,
with the invariants an operator relies on checked after every seed. The scaler tops up capacity
(template pools launched with EC2 Fleet, :func:`~scaler.sim.cloud.shipped.capacity_settings`),
so the faults reach its launches too.

Each seed draws its own trouble (:func:`trial`): fault windows in the AWS calls (throttling
bursts, 5xx answers, lost answers, latency spikes), one or two replicas sharing a lease, crashes
and restarts, duplicated messages, warnings for other clusters' instances and malformed
messages. After the run, :func:`violations` checks:

- every spot-warned instance registered in the cluster is DRAINING before its notice ends,
  unless every replica was down within a visibility timeout of the warning or during its
  notice, or no receive of the warning reached a replica before the notice's end;
- no container instance outside the cluster is named in a state change;
- every message is deleted after its work, or sits in the dead-letter queue, and only the
  malformed ones do, or ones no receive of which reached a replica, or ones deleted after
  their work with the receipt handle a replica held when a receive whose answer was lost had
  superseded it (SQS then deletes nothing and says nothing);

and, of the scaler's own acts (a spot reclaim by the market is not one), from the run's
:class:`~scaler.sim.cloud.ledger.Ledger`:

- no instance is terminated (or deregistered) while service tasks run or wait on it;
- no double launch: after each launch, a template pool has at most one instance more than the
  largest target a replica's plan set for it (instances doomed or DRAINING not counted);
- no template pool ever holds more than ``SCALER_FLEET_MAX_SIZE`` instances;
- the scaler's own drains under the disruption budget (recommendations, rolls, consolidation,
  migration) whose tasks are still moving never exceed it when it starts another;
- no write names another cluster or one of its instances;
- no instance stays DRAINING past ``SCALER_DRAIN_TIMEOUT`` (and the reader's next look)
  without a warning of the scaler's log naming it.

A receive whose answer is lost (the ``lost`` fault) takes its messages all the same: SQS hides
them for the visibility timeout and counts the receive toward ``maxReceiveCount``, as it does
when a connection drops after SQS answered. No consumer can tell such a receive from silence,
so a message whose every receive was lost is the world's doing, like a warning sent while
every replica was down; the run records which events reached a replica
(:attr:`~scaler.sim.cloud.shipped.Outcome.reached`) to tell the two apart.

A failing seed prints the command that replays it: ``python -m scaler.sim.cloud.campaign SEED``;
``python -m scaler.sim.cloud.campaign 0-4999`` runs a campaign of its own and prints its figures.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

from scaler.settings import Settings
from scaler.sim.builtin import builtin
from scaler.sim.cloud.faults import Faults
from scaler.sim.cloud.ledger import Ledger
from scaler.sim.cloud.shipped import Crash, Noise, Outcome, capacity_settings, run_shipped
from scaler.sim.engine import NOTICE
from scaler.sim.scenario import Scenario

SCENARIO = builtin("storm", instances=24, tasks=120, services=6).with_hours(0.5)
VISIBILITY = 30.0  # the queue's visibility timeout: a crashed replica's messages come back then
MAX_SIZE = int(capacity_settings(SCENARIO)["fleet_max_size"])  # SCALER_FLEET_MAX_SIZE
DRAIN_TIMEOUT = float(Settings.model_fields["drain_timeout"].default)  # SCALER_DRAIN_TIMEOUT
STALE_SLACK = 60.0  # a stale drain is seen at the capacity reader's next look, not at once


@dataclass(frozen=True)
class Trial:
    seed: int
    faults: Faults
    crashes: tuple[Crash, ...]
    replicas: int
    noise: Noise


def trial(seed: int, scenario: Scenario = SCENARIO) -> Trial:
    """The trouble seed ``seed`` brings."""
    rng = random.Random(f"campaign:{seed}")
    horizon = scenario.hours * 3600
    busy = _storm(scenario)
    replicas = rng.choice((1, 2))
    crashes = []
    for _ in range(rng.choice((0, 1, 2))):
        at = rng.uniform(*busy) if rng.random() < 0.7 else rng.uniform(60, horizon - 300)
        crashes.append(Crash(at, at + rng.uniform(5, 120), rng.randrange(replicas)))
    noise = Noise(
        duplicates=rng.choice((0.0, 0.05, 0.2)),
        foreign=rng.choice((0.0, 0.5)),
        malformed=rng.choice((0, 1, 3)),
    )
    faults = Faults.draw(seed, horizon, count=rng.randint(1, 5), busy=busy)
    return Trial(seed, faults, tuple(sorted(crashes, key=lambda c: c.at)), replicas, noise)


def _storm(scenario: Scenario) -> tuple[float, float]:
    """Where the trouble is: from shortly before the first storm to well after it."""
    at = min((e.at for e in scenario.events if e.type == "storm"), default=600.0)
    return max(0.0, at - 120.0), at + 900.0


def play(t: Trial, scenario: Scenario = SCENARIO) -> Outcome:
    faults = Faults(t.faults.windows, t.faults.share, t.faults.seed)  # its draws from the start
    return run_shipped(
        scenario,
        t.seed,
        faults=faults,
        crashes=t.crashes,
        replicas=t.replicas,
        noise=t.noise,
        capacity=True,
    )


def violations(t: Trial, outcome: Outcome) -> list[str]:
    """What went wrong in ``outcome`` (empty: every invariant held)."""
    found = []
    for iid, warned in sorted(outcome.warned.items()):
        if iid not in outcome.registered or not _up(t, warned - VISIBILITY, warned + NOTICE):
            continue
        if outcome.warnings_reached.get(iid, float("inf")) >= warned + NOTICE:
            continue  # every receive of the warning within its notice had its answer lost
        drained = outcome.drained.get(iid)
        if drained is None or drained > warned + NOTICE:
            found.append(f"{iid} warned at {warned:.1f} s was not DRAINING by the notice's end")
    if outcome.unknown:
        found.append(f"state change named instances outside the cluster: {outcome.unknown[:3]}")
    if outcome.stranded:
        found.append(f"{outcome.stranded} messages were never deleted")
    excused = outcome.dead_unreached + outcome.dead_superseded
    if outcome.dead - excused != outcome.malformed:
        found.append(
            f"{outcome.dead} messages in the dead-letter queue, {outcome.malformed} malformed, "
            f"{outcome.dead_unreached} never reached a replica, {outcome.dead_superseded} "
            "deleted with a handle a lost receive had superseded"
        )
    return found + _acts(outcome.ledger)


def _acts(ledger: Ledger) -> list[str]:
    """What the scaler's own acts must never do (the market's reclaims are not its acts)."""
    found = [
        f"{iid} terminated with {tasks} service tasks at {at:.1f} s"
        for at, iid, tasks in ledger.removals
        if tasks > 0
    ]
    found += [
        f"{pool} had {size} instances after a launch at {at:.1f} s; its plan asked for {target}"
        for at, pool, size, target in ledger.launches
        if size > target + 1
    ]
    found += [
        f"{pool} reached {most} instances, above its maximum size {MAX_SIZE}"
        for pool, most in ledger.peaks
        if most > MAX_SIZE
    ]
    found += [
        f"{iid} drained by the scaler's choice at {at:.1f} s with {moving} own drains moving "
        f"tasks, above the disruption budget of {budget}"
        for at, iid, moving, budget in ledger.own_drains
        if moving > budget
    ]
    if ledger.touched:
        found.append(f"wrote to another cluster's: {list(ledger.touched[:3])}")
    return found + _unexplained(ledger)


def _unexplained(ledger: Ledger) -> list[str]:
    """DRAINING spells past the drain timeout that no warning of the scaler's log named."""
    found = []
    for iid, start, end in ledger.drains:
        if end - start <= DRAIN_TIMEOUT + STALE_SLACK:
            continue
        if not any(who == iid and start <= at <= end for at, who in ledger.warned_about):
            found.append(
                f"{iid} DRAINING from {start:.1f} s to {end:.1f} s, past the drain timeout, "
                "and no warning said why"
            )
    return found


def _up(t: Trial, start: float, end: float) -> bool:
    """Was some replica running throughout [start, end]?"""
    down = {r: [(c.at, c.back) for c in t.crashes if c.replica == r] for r in range(t.replicas)}
    return any(all(b <= start or a >= end for a, b in down[r]) for r in down)


def replay(seed: int) -> str:
    return f"python -m scaler.sim.cloud.campaign {seed}"


def main(argv: list[str]) -> int:
    """``SEED`` replays one seed and says what it met; ``FIRST-LAST`` runs a campaign over those
    seeds and prints its figures as JSON (a benchmark: ``0-4999``)."""
    given = argv[0] if argv else "0"
    if "-" in given:
        first, last = (int(x) for x in given.split("-", 1))
        return _campaign(range(first, last + 1))
    seed = int(given)
    t = trial(seed)
    found = violations(t, play(t))
    print(t)
    print("\n".join(found) or "every invariant held")
    if found:
        print(f"replay: {replay(seed)}")
    return 1 if found else 0


def _campaign(seeds: range) -> int:
    import json
    import logging
    import time

    # quiet, but the run still hears the scaler's log (:mod:`scaler.sim.cloud.ledger`)
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    began, failed, hits = time.perf_counter(), {}, dict[str, int]()
    for seed in seeds:
        t = trial(seed)
        outcome = play(t)
        for kind, n in outcome.fault_hits.items():
            hits[kind] = hits.get(kind, 0) + n
        found = violations(t, outcome)
        if found:
            failed[seed] = {"violations": found, "replay": replay(seed)}
    report = {
        "seeds": len(seeds),
        "failed": failed,
        "fault_hits": hits,
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
