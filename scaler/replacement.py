"""Where ``replace-then-drain`` gets its replacement capacity.

A rebalance recommendation often comes minutes before the interruption warning. With
``SCALER_REBALANCE_POLICY=replace-then-drain`` the scaler first asks a :class:`ReplacementSource`
for capacity to take the instance's tasks, and drains once it is ready (or once
``SCALER_REPLACEMENT_TIMEOUT`` passes, whichever comes first), so the tasks move straight onto
running capacity. Until a capacity source is configured, :class:`NoReplacement` answers at once
that none is coming, and the instance is drained right away.
"""

from __future__ import annotations

from typing import Protocol

from scaler.model import ContainerInstance


class ReplacementSource(Protocol):
    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        """Bring up capacity to replace ``instance``; True once it is ready, False if none comes."""
        ...


class NoReplacement:
    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        return False
