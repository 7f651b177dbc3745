"""The planning core stays pure: no asyncio, no AWS libraries, no adapters."""

from __future__ import annotations

import ast
from pathlib import Path

PLAN = Path(__file__).resolve().parents[2] / "scaler" / "plan"
FORBIDDEN = ("asyncio", "aiobotocore", "botocore", "boto3", "aiohttp", "scaler.aws", "time")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_planners_import_no_io() -> None:
    modules = sorted(PLAN.glob("*.py"))
    assert modules, "scaler/plan has no modules?"
    for module in modules:
        bad = {n for n in _imports(module) for f in FORBIDDEN if n == f or n.startswith(f + ".")}
        assert not bad, f"{module.name} imports {sorted(bad)}"
