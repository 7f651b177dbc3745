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


@pytest.mark.parametrize("seed", [2246, 3496, 2923, 3796, 4329])
def test_seeds_that_once_failed_hold_every_invariant(seed: int) -> None:
    """2923: a crashed replica's long poll ran on and took an event for no one, five times.
    The others lost every answer to the receives of one message (a warning within its notice;
    an event until the dead-letter queue took it), which no consumer can tell from silence."""
    t = trial(seed)
    assert violations(t, play(t)) == []


@pytest.mark.parametrize(("seed", "instance"), [(2246, "i-00000000000000013")])
def test_a_warning_that_reached_no_replica_in_its_notice_is_told_apart(
    seed: int, instance: str
) -> None:
    outcome = play(trial(seed))
    assert outcome.warnings_reached[instance] >= outcome.warned[instance] + 120
    assert outcome.warned.keys() - outcome.warnings_reached.keys() == set()


@pytest.mark.parametrize("seed", [3796, 4329])
def test_an_event_whose_every_receive_was_lost_is_told_apart_in_the_dead_letter_queue(
    seed: int,
) -> None:
    outcome = play(trial(seed))
    assert outcome.dead_unreached == 1
    assert outcome.dead == outcome.malformed + 1


def test_a_seed_replays_exactly() -> None:
    t = trial(5)
    assert play(t) == play(t)
