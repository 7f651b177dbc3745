"""Route each signal to the work it calls for, after checking it concerns this cluster.

Instance-level EC2 and Auto Scaling events arrive for every instance in the account and region,
so the first question for each is whether its instance is one of this cluster's container
instances (:class:`~scaler.aws.ecs.InstanceDirectory` answers from a cached map). ECS events carry
their cluster's ARN and are compared by name. Signals for other clusters are acknowledged and
counted as ``other_cluster``; signals the scaler does not act on are ``ignored``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from scaler.aws.ecs import InstanceDirectory
from scaler.aws.intake import Outcome
from scaler.events import (
    ContainerInstanceChange,
    Ignored,
    ServicePlacementFailure,
    Signal,
    TaskStateChange,
    instance_ids,
)
from scaler.model import ContainerInstance, cluster_name_of

log = logging.getLogger(__name__)

HANDLED = Outcome("handled")
OTHER_CLUSTER = Outcome("other_cluster")
IGNORED = Outcome("ignored")

EcsSignal = ContainerInstanceChange | TaskStateChange | ServicePlacementFailure


class EventHandler:
    def __init__(self, cluster: str, directory: InstanceDirectory) -> None:
        self._cluster_name = cluster_name_of(cluster)
        self._directory = directory

    async def __call__(self, signal: Signal, received_at: datetime) -> Outcome:
        if isinstance(signal, Ignored):
            return IGNORED
        if isinstance(signal, EcsSignal):
            return self._ecs_signal(signal)
        ids = instance_ids(signal)
        members = await self._directory.resolve(ids)
        if not members:
            return OTHER_CLUSTER
        return HANDLED

    def _ecs_signal(self, signal: EcsSignal) -> Outcome:
        if cluster_name_of(signal.cluster_arn) != self._cluster_name:
            return OTHER_CLUSTER
        if isinstance(signal, ContainerInstanceChange) and signal.ec2_instance_id:
            self._directory.update(
                ContainerInstance(
                    arn=signal.container_instance_arn,
                    ec2_instance_id=signal.ec2_instance_id,
                    status=signal.status,
                    version=signal.version,
                )
            )
        return HANDLED
