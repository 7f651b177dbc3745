"""Spot Fleet migration: weights, and the target capacity a fleet is lowered to."""

from __future__ import annotations

from scaler.aws.migration import Fleet, Fleets, _weights, lowered_target
from scaler.aws.retiring import Ec2Facts

GOING = Ec2Facts(retiring="migration", state="running")


def test_weights_come_from_launch_specifications_and_template_overrides() -> None:
    config = {
        "LaunchSpecifications": [{"InstanceType": "m5.large", "WeightedCapacity": 2.0}],
        "LaunchTemplateConfigs": [
            {"Overrides": [{"InstanceType": "m5.xlarge", "WeightedCapacity": 4}, {"SubnetId": "s"}]}
        ],
    }
    assert _weights(config) == {"m5.large": 2.0, "m5.xlarge": 4.0}
    assert _weights({"LaunchSpecifications": [{"InstanceType": "c5.large"}]}) == {"c5.large": 1.0}


def test_the_target_drops_by_the_weight_of_retiring_instances_only() -> None:
    fleet = Fleet("sfr-1", 8.0, True, {"i-a": 2.0, "i-b": 2.0, "i-c": 4.0})
    assert lowered_target(Fleets((fleet,), {}), "sfr-1") is None, "nothing retiring"
    fleets = Fleets((fleet,), {"i-c": GOING, "i-a": Ec2Facts(state="running")})
    assert lowered_target(fleets, "sfr-1") == 4.0
    assert lowered_target(fleets, "sfr-2") is None


def test_the_target_is_never_raised_and_request_fleets_are_not_modified() -> None:
    short = Fleet("sfr-1", 2.0, True, {"i-a": 2.0, "i-b": 2.0, "i-c": 2.0})  # over-fulfilled
    assert lowered_target(Fleets((short,), {"i-c": GOING}), "sfr-1") is None
    once = Fleet("sfr-1", 6.0, False, {"i-a": 2.0, "i-b": 2.0, "i-c": 2.0})
    assert lowered_target(Fleets((once,), {"i-c": GOING}), "sfr-1") is None


def test_remaining_leaves_out_retiring_and_terminated_instances() -> None:
    fleet = Fleet("sfr-1", 3.0, True, {"i-a": 1.0, "i-b": 1.0, "i-c": 1.0})
    facts = {"i-a": GOING, "i-b": Ec2Facts(state="terminated"), "i-c": Ec2Facts(state="running")}
    fleets = Fleets((fleet,), facts)
    assert fleets.remaining == {"i-c"}
    assert fleets.of("i-b") is fleet and fleets.of("i-z") is None


def test_a_tagged_instance_whose_drain_failed_is_replaced_again() -> None:
    """Tagged, but still ACTIVE (the drain failed, or a restart came in between): it must not
    hold the budget for ever; the migration launches for it and drains it again."""
    from scaler.aws.migration import Migration
    from scaler.plan.capacity import (
        SPOT,
        CapacityMemory,
        CapacityPolicy,
        CapacitySnapshot,
        NodeView,
        PoolView,
    )
    from scaler.plan.roll import RollPolicy

    def node(iid: str, pool: str) -> NodeView:
        return NodeView(iid, pool, "a", SPOT, "ACTIVE", 4096, 8192, 2048, 4096, tasks=2)

    nodes = [node(f"g{i}", "grp") for i in range(3)] + [node(f"f{i}", "") for i in range(4)]
    pool = PoolView("grp", SPOT, "*", 4096, 8192, 0.1, 3, max_size=10)
    snap = CapacitySnapshot(10_000.0, tuple(nodes), (pool,), ())
    facts = {f"f{i}": Ec2Facts(state="running") for i in range(4)}
    facts["f0"] = GOING
    fleets = Fleets((Fleet("sfr-1", 4.0, True, {f"f{i}": 1.0 for i in range(4)}),), facts)
    migration = Migration(None, ("sfr-1",), RollPolicy(max_disrupted=0.1))  # type: ignore[arg-type]
    plan = migration.plan(snap, fleets, CapacityMemory(), CapacityPolicy(), frozenset())
    assert dict(plan.launch) == {"grp": 1}, plan.reasons
