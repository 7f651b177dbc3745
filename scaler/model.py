"""Frozen values that describe a cluster as the scaler sees it.

Adapters build these from AWS answers; planners read them and return actions. They carry no
behaviour beyond small derived properties, so they print and compare well in tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContainerInstance:
    """An EC2 instance registered in the cluster."""

    arn: str
    ec2_instance_id: str
    status: str  # ACTIVE | DRAINING | REGISTERING | DEREGISTERING | ...
    running_tasks: int = 0
    pending_tasks: int = 0
    agent_connected: bool = True
    version: int = 0  # ECS's own counter, raised at every change of the container instance
    cpu: int = 0  # registered CPU units
    memory: int = 0  # registered MiB
    free_cpu: int = 0  # remaining CPU units
    free_memory: int = 0  # remaining MiB
    # the scaler's drain mark (ECS attribute scaler.drained): "" none, None not known (an event)
    drain_mark: str | None = None
    capacity_provider: str = ""  # the ECS capacity provider it belongs to ("": none, not known)
    availability_zone: str = ""  # ECS attribute ecs.availability-zone ("": not known)
    instance_type: str = ""  # ECS attribute ecs.instance-type ("": not known)

    @property
    def draining(self) -> bool:
        return self.status == "DRAINING"


def cluster_name_of(cluster_arn_or_name: str) -> str:
    """``arn:aws:ecs:r:a:cluster/name`` or ``name`` -> ``name``."""
    return cluster_arn_or_name.rsplit("/", 1)[-1]
