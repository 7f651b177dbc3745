"""What a task definition says about a task: its reservation, and whether Fargate can run it."""

from __future__ import annotations

from typing import Any


def reservation(definition: dict[str, Any]) -> tuple[int, int]:
    """(CPU units, MiB) a task reserves: the task-level values if set, else the containers' sum.

    A container reserves its ``memoryReservation`` (soft limit) if it has one, else its
    ``memory`` (hard limit), as the ECS scheduler counts it.
    """
    containers = definition.get("containerDefinitions", [])
    cpu = _amount(definition.get("cpu")) or sum(int(c.get("cpu") or 0) for c in containers)
    memory = _amount(definition.get("memory")) or sum(
        int(c.get("memoryReservation") or c.get("memory") or 0) for c in containers
    )
    return cpu, memory


def _amount(value: Any) -> int:
    """A task-level cpu or memory value: ``"512"``, ``"1 vCPU"``, ``"2 GB"``; 0 when unset."""
    if value is None:
        return 0
    text = str(value).strip().lower().replace(" ", "")
    for unit in ("vcpu", "gb"):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * 1024)
    try:
        return int(float(text))
    except ValueError:
        return 0


def fargate_problem(td: dict[str, Any]) -> str | None:
    """Why a task definition cannot run on Fargate, or None."""
    if "FARGATE" not in td.get("requiresCompatibilities", []):
        return "requiresCompatibilities does not include FARGATE"
    if td.get("networkMode") != "awsvpc":
        return "networkMode must be awsvpc"
    if not td.get("cpu") or not td.get("memory"):
        return "task-level cpu and memory must be set"
    return None
