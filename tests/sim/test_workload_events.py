"""Deploys and demand changes aimed at named services (``services`` / ``service`` on the
``deploy`` and ``scale`` events; ``desired`` sets an absolute count)."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative
from scaler.sim.scenario import ScenarioError, from_dict
from tests.sim.workload_scenarios import base, live


def _after(events: list[dict[str, Any]], t: float) -> Sim:
    sim = Sim(from_dict(base(events=events)), EcsNative(), 3)
    sim.begin()
    sim.step_until(t)
    return sim


def test_scale_one_service_by_factor() -> None:
    sim = _after([{"at": 60, "type": "scale", "services": ["web"], "factor": 2.0}], 70)
    assert sim.cluster.services["web"].spec.desired == 16
    assert sim.cluster.services["api"].spec.desired == 4


def test_scale_one_service_to_a_count() -> None:
    sim = _after([{"at": 60, "type": "scale", "service": "api", "desired": 9}], 70)
    assert sim.cluster.services["api"].spec.desired == 9
    assert sim.cluster.services["web"].spec.desired == 8


def test_scale_to_zero_is_allowed_for_a_named_count() -> None:
    sim = _after([{"at": 60, "type": "scale", "service": "api", "desired": 0}], 200)
    assert sim.cluster.services["api"].spec.desired == 0
    assert live(sim, "api") == 0


def test_scale_without_services_still_scales_every_service() -> None:
    sim = _after([{"at": 60, "type": "scale", "factor": 0.5}], 70)
    assert sim.cluster.services["web"].spec.desired == 4
    assert sim.cluster.services["api"].spec.desired == 2


def test_deploy_named_services_only() -> None:
    sim = _after([{"at": 60, "type": "deploy", "services": ["api"]}], 70)
    assert sim.cluster.services["api"].revision == 2
    assert sim.cluster.services["web"].revision == 1


def test_deploy_by_share_still_works() -> None:
    sim = _after([{"at": 60, "type": "deploy", "share": 1.0}], 70)
    assert sim.cluster.services["api"].revision == 2
    assert sim.cluster.services["web"].revision == 2


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            {"at": 1, "type": "scale", "services": ["wbe"], "factor": 2},
            "events[0].services[0]: no service is named 'wbe'; did you mean 'web'?",
        ),
        (
            {"at": 1, "type": "scale", "service": "nope", "desired": 2},
            "events[0].service: no service is named 'nope'",
        ),
        (
            {"at": 1, "type": "scale", "services": ["web"]},
            "events[0]: scale needs factor or desired",
        ),
        (
            {"at": 1, "type": "scale", "factor": 2, "desired": 3},
            "events[0]: scale takes factor or desired, not both",
        ),
        (
            {"at": 1, "type": "scale", "desired": 3},
            "events[0].desired: names a count: give services (or service) too",
        ),
        (
            {"at": 1, "type": "deploy", "service": "web", "services": ["api"]},
            "events[0]: give service or services, not both",
        ),
        (
            {"at": 1, "type": "deploy"},
            "events[0]: deploy needs share or services",
        ),
        (
            {"at": 1, "type": "scale", "service": "web", "desired": -1},
            "events[0].desired: must be at least 0 (got -1)",
        ),
    ],
)
def test_validation_names_the_path(event: dict[str, Any], line: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        from_dict(base(events=[event]))
    assert any(p.startswith(line) for p in caught.value.problems), caught.value.problems
    assert len(caught.value.problems) == 1
