"""The capacity planner's policy, as the settings give it."""

from __future__ import annotations

from scaler.plan.capacity import CapacityPolicy
from scaler.settings import Settings


def policy_from(settings: Settings) -> CapacityPolicy:
    return CapacityPolicy(
        headroom=settings.headroom,
        headroom_cpu=settings.headroom_cpu,
        headroom_memory=settings.headroom_memory,
        headroom_per_az=settings.headroom_per_az,
        pool_cooldown=settings.pool_cooldown,
        max_on_demand=settings.max_on_demand,
        max_overflow_tasks=settings.max_overflow_tasks,
        max_hourly_spend=settings.max_hourly_spend,
        revert_after=settings.revert_after,
        revert_batch=settings.revert_batch,
        evacuate_lead=settings.evacuate_lead,
        on_demand_base=settings.on_demand_base,
        on_demand_percent=settings.on_demand_percent,
    )
