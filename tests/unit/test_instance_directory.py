"""The instance directory between refreshes: what an ECS event changes, and what it keeps."""

from __future__ import annotations

from scaler.aws.ecs import InstanceDirectory
from scaler.clock import ManualClock
from scaler.model import ContainerInstance

HELD = ContainerInstance(
    arn="arn:ci/1",
    ec2_instance_id="i-1",
    status="ACTIVE",
    running_tasks=3,
    pending_tasks=1,
    version=4,
    cpu=2048,
    memory=7000,
    free_cpu=512,
    free_memory=1000,
    drain_mark="",
    capacity_provider="spot-cp",
)


def _directory() -> InstanceDirectory:
    directory = InstanceDirectory(None, "prod", ManualClock(), ttl=60.0)
    directory.update(HELD)
    return directory


def test_a_state_change_event_keeps_the_resources_counts_and_provider_held() -> None:
    directory = _directory()
    # an ECS state-change event: its status and version, nothing of its resources
    directory.update(ContainerInstance("arn:ci/1", "i-1", status="DRAINING", version=5))
    (ci,) = directory.known()
    assert (ci.status, ci.version) == ("DRAINING", 5)
    assert (ci.cpu, ci.memory, ci.free_cpu, ci.free_memory) == (2048, 7000, 512, 1000)
    assert (ci.running_tasks, ci.pending_tasks) == (3, 1)
    assert (ci.capacity_provider, ci.drain_mark) == ("spot-cp", "")


def test_a_state_with_resources_replaces_those_held() -> None:
    directory = _directory()
    directory.update(
        ContainerInstance("arn:ci/1", "i-1", status="ACTIVE", version=6, cpu=2048, memory=7000)
    )
    (ci,) = directory.known()
    assert (ci.free_cpu, ci.running_tasks, ci.capacity_provider) == (0, 0, "")
