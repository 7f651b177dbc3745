"""When consolidation in `scaler run` waits: only a settled cluster gives capacity back."""

from __future__ import annotations

from dataclasses import replace

from scaler.aws.consolidation import policy_from
from scaler.capacity.scale_in import unsettled
from scaler.plan.capacity import (
    SPOT,
    CapacityPlan,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
)
from scaler.settings import LoadSource, load_settings


def _snap(*nodes: NodeView, unplaced: int = 0) -> CapacitySnapshot:
    pool = PoolView("spot", SPOT, "*", 4096, 8192, 0.06, len(nodes))
    service = ServiceView("web", 2, 512, 512, {}, unplaced=unplaced)
    return CapacitySnapshot(0.0, nodes, (pool,), (service,))


NODE = NodeView("i-1", "spot", "a", SPOT, "ACTIVE", 4096, 8192, 2048, 4096)


def test_a_settled_cluster_may_consolidate() -> None:
    assert unsettled(_snap(NODE), CapacityPlan(), frozenset()) is None


def test_every_disturbance_is_a_reason_to_wait() -> None:
    draining = replace(NODE, id="i-2", status="DRAINING")
    cases: dict[str, tuple[CapacitySnapshot, CapacityPlan, frozenset[str], tuple[str, ...]]] = {
        "launches": (_snap(NODE), CapacityPlan(pool_targets={"spot": 2}), frozenset(), ()),
        "release": (_snap(NODE), CapacityPlan(release=("i-1",)), frozenset(), ()),
        "launching": (_snap(replace(NODE, status="launching")), CapacityPlan(), frozenset(), ()),
        "notice": (_snap(replace(NODE, notice_ends=60.0)), CapacityPlan(), frozenset(), ()),
        "drain": (_snap(NODE, draining), CapacityPlan(), frozenset(), ()),
        "unplaced": (_snap(NODE, unplaced=1), CapacityPlan(), frozenset(), ()),
        "roll": (_snap(NODE), CapacityPlan(), frozenset(), ("i-1",)),
    }
    for name, (snap, plan, ours, outdated) in cases.items():
        assert unsettled(snap, plan, ours, outdated), name
    # its own drains do not hold it up (the disruption budget counts them instead)
    assert unsettled(_snap(NODE, draining), CapacityPlan(), frozenset({"i-2"})) is None


def test_the_load_limit_follows_the_load_source() -> None:
    base = {"cluster": "c", "queue_url": "http://q", "spot_pools": "spot", "consolidate": True}
    reserved = policy_from(load_settings(**base))
    measured = policy_from(
        load_settings(**base, load_source=LoadSource.MEASURED, hot_threshold=0.7)
    )
    # on reserved CPU a moved task may not take its destination's reservations over the
    # threshold either (tasks that use more than they reserve make it hot), but a packed
    # instance does not hold consolidation up: binpack packs them so
    assert reserved.max_load == 0.8 and not reserved.pause_when_hot
    assert measured.max_load == 0.7 and measured.pause_when_hot
    assert reserved.max_disrupted == 0.1 and reserved.max_per_hour == 60
