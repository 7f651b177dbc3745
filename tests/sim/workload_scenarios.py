"""Small scenario data for the workload tests: two AZs of m5.xlarge spot, a few services."""

from __future__ import annotations

import copy
from typing import Any

from scaler.sim.engine import Sim
from scaler.sim.scenario import Scenario, from_dict

A, B = "us-east-1a", "us-east-1b"


def base(**top: Any) -> dict[str, Any]:
    """A scenario file's data: 4 m5.xlarge spot instances per AZ, services web and api."""
    raw: dict[str, Any] = {
        "name": "workload",
        "hours": 1.0,
        "instance_types": [
            {"name": "m5.xlarge", "vcpu": 4, "memory_mib": 16384, "on_demand_price": 0.192},
            {"name": "m5.2xlarge", "vcpu": 8, "memory_mib": 32768, "on_demand_price": 0.384},
        ],
        "pools": [
            {
                "name": f"spot-{t}-{az}",
                "capacity": "spot",
                "instance_type": t,
                "az": az,
                "price": 0.07 if t == "m5.xlarge" else 0.14,
                "initial": 4 if t == "m5.xlarge" else 0,
            }
            for t in ("m5.xlarge", "m5.2xlarge")
            for az in (A, B)
        ]
        + [
            {
                "name": f"od-m5.xlarge-{az}",
                "capacity": "on-demand",
                "instance_type": "m5.xlarge",
                "az": az,
            }
            for az in (A, B)
        ],
        "services": [
            {"name": "web", "desired": 8, "cpu": 512, "memory": 1024},
            {"name": "api", "desired": 4, "cpu": 1024, "memory": 2048},
        ],
    }
    raw.update(copy.deepcopy(top))
    return raw


def live(sim: Sim, service: str) -> int:
    """Tasks of ``service`` placed and not stopped."""
    state = sim.cluster.services[service]
    return sum(1 for t in state.tasks.values() if t.state in ("PENDING", "RUNNING"))


def scenario(**top: Any) -> Scenario:
    return from_dict(base(**top))
