"""The fault campaign: the shipped scaler in the simulated world under random faults (throttling,
5xx, lost answers, latency spikes, crashes and restarts, a second replica, duplicated, foreign
and malformed messages), 200 seeds, every invariant checked after each; a failing seed names the
command that replays it. The checks themselves are shown to catch a scaler that does not act."""

from __future__ import annotations

import pytest

from scaler.sim.cloud.campaign import SCENARIO, play, replay, trial, violations
from scaler.sim.cloud.shipped import run_shipped

SEEDS = range(200)


@pytest.mark.slow
def test_every_invariant_holds_across_the_campaign() -> None:
    failed = {}
    for seed in SEEDS:
        t = trial(seed)
        found = violations(t, play(t))
        if found:
            failed[seed] = found
    assert not failed, "\n".join(f"{replay(s)}: {v[:2]}" for s, v in failed.items())


def test_a_scaler_that_never_drains_breaks_the_invariants() -> None:
    t = trial(0)
    outcome = run_shipped(SCENARIO, t.seed, {"dry_run": True}, replicas=1)
    found = violations(t, outcome)
    assert any("was not DRAINING by the notice's end" in v for v in found)


def test_a_seed_replays_exactly() -> None:
    t = trial(5)
    assert play(t) == play(t)
