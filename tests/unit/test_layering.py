"""Import layering: the planning core stays pure (no asyncio, no AWS libraries, no adapters), and
the capacity controller and its ports depend on no AWS library, no AWS adapter and no wall clock,
so the same controller runs against AWS and against a simulated AWS in virtual time."""

from __future__ import annotations

import ast
from pathlib import Path

SCALER = Path(__file__).resolve().parents[2] / "scaler"
PLAN = SCALER / "plan"
FORBIDDEN = ("asyncio", "aiobotocore", "botocore", "boto3", "aiohttp", "scaler.aws", "time")
CAPACITY = SCALER / "capacity"
CAPACITY_FORBIDDEN = ("aiobotocore", "botocore", "boto3", "aiohttp", "scaler.aws", "time")
# plain data and bookkeeping the capacity core shares with the AWS side (no AWS call made there)
CAPACITY_ALLOWED = frozenset({"scaler.aws.retiring", "scaler.aws.replaced"})


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _bad(path: Path, forbidden: tuple[str, ...], allowed: frozenset[str] = frozenset()) -> set[str]:
    return {
        n for n in _imports(path) - allowed for f in forbidden if n == f or n.startswith(f + ".")
    }


def test_planners_import_no_io() -> None:
    modules = sorted(PLAN.glob("*.py"))
    assert modules, "scaler/plan has no modules?"
    for module in modules:
        bad = _bad(module, FORBIDDEN)
        assert not bad, f"{module.name} imports {sorted(bad)}"


def test_capacity_controller_and_ports_import_no_aws_adapter() -> None:
    modules = sorted(CAPACITY.glob("*.py"))
    names = {m.name for m in modules}
    assert {"controller.py", "ports.py", "observed.py"} <= names, "scaler/capacity is incomplete"
    for module in modules:
        bad = _bad(module, CAPACITY_FORBIDDEN, CAPACITY_ALLOWED)
        assert not bad, f"capacity/{module.name} imports {sorted(bad)}"
