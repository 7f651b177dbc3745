"""One controller, two worlds: the simulator runs the scaler we ship, never an orchestration of
its own. Outside the simulated AWS (``scaler/sim/cloud``) the simulator imports only its own
modules, the ECS model, the events and the settings; the simulated AWS imports the scaler
whole (:class:`scaler.loop.Scaler`) and the names of its tags, never a planner or a
controller part to call on its own. The baselines are the only policies modelled."""

from __future__ import annotations

import ast
from pathlib import Path

from scaler.sim.policies import POLICIES

SIM = Path(__file__).resolve().parents[2] / "scaler" / "sim"
# what any simulator module may import from the package
MODEL = ("scaler.sim", "scaler.ecs", "scaler.events", "scaler.settings", "scaler.testbed")
# the operator's act the world models (SCALER_SIM_APPLY_ADVICE): deploying the reservations the
# advice names, advised as the scaler advises them; the scaler itself changes no reservation
OPERATOR = ("scaler.plan.advice",)
# what the simulated AWS may import besides: the shipped scaler whole, its clients' target
# and the tags it writes (a surge's mark says how much of a desired count is no demand)
WORLD = ("scaler.loop", "scaler.aws.clients", "scaler.aws.templates", "scaler.aws.surges")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n == "scaler" or n.startswith("scaler.")}


def _outside(names: set[str], allowed: tuple[str, ...]) -> set[str]:
    return {n for n in names if not any(n == a or n.startswith(f"{a}.") for a in allowed)}


def test_the_simulator_imports_no_planner_or_controller_of_the_scaler() -> None:
    found = {}
    for path in sorted(SIM.rglob("*.py")):
        cloud = "cloud" in path.relative_to(SIM).parts
        stray = _outside(_imports(path), MODEL + OPERATOR + WORLD if cloud else MODEL + OPERATOR)
        if stray:
            found[str(path.relative_to(SIM))] = sorted(stray)
    assert not found, f"the simulator orchestrates the scaler's parts itself: {found}"


def test_the_check_catches_an_orchestration_of_the_simulators_own(tmp_path: Path) -> None:
    policy = tmp_path / "policies.py"
    policy.write_text(
        "from scaler.plan.drain import decide\nfrom scaler.capacity import controller\n"
        "import scaler.sim.engine\n"
    )
    assert _outside(_imports(policy), MODEL) == {
        "scaler.plan.drain.decide",
        "scaler.capacity.controller",
    }


def test_only_the_baselines_are_modelled() -> None:
    assert set(POLICIES) == {"ecs-native", "ecs-scaler"}
