"""ECS events for the cluster are news for the leader's quiet capacity cycles
(:mod:`scaler.capacity.quiet`): the handler notes each on the board and shares it, so the
leader's next cycle is a full one whichever replica took the event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from scaler.clock import ManualClock
from scaler.events import ContainerInstanceChange, ServicePlacementFailure
from scaler.handler import EventHandler, Workers
from scaler.model import ContainerInstance
from scaler.notices import CHANGED, NoticeBoard, SharedNotice
from scaler.plan.drain import DrainPolicy

ECS = "arn:aws:ecs:eu-west-1:123456789012"
AT = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


class Directory:
    def __init__(self) -> None:
        self.updated: list[ContainerInstance] = []

    def update(self, ci: ContainerInstance) -> None:
        self.updated.append(ci)


def _handler() -> tuple[EventHandler, Workers, list[SharedNotice]]:
    published: list[SharedNotice] = []

    async def share(notice: SharedNotice) -> None:
        published.append(notice)

    none = cast(Any, None)
    workers = Workers(
        directory=cast(Any, Directory()),
        drainer=none,
        lifecycle=none,
        replacements=none,
        board=NoticeBoard(),
        share=share,
    )
    handler = EventHandler(f"{ECS}:cluster/prod", workers, DrainPolicy(), ManualClock(AT))
    return handler, workers, published


def _instance_change(cluster: str) -> ContainerInstanceChange:
    return ContainerInstanceChange(
        event_id="e-1",
        time=AT,
        cluster_arn=f"{ECS}:cluster/{cluster}",
        container_instance_arn=f"{ECS}:container-instance/{cluster}/abc",
        ec2_instance_id="i-7c3d91e2",
        status="ACTIVE",
        version=28,
    )


async def test_a_container_instance_change_is_noted_counted_and_shared() -> None:
    handler, workers, published = _handler()
    outcome = await handler(_instance_change("prod"), AT)
    assert outcome.label == "handled"
    assert workers.heard == 1
    assert workers.board.changed == {"i-7c3d91e2": AT.timestamp()}
    assert [(n.instance_id, n.kind, n.at) for n in published] == [
        ("i-7c3d91e2", CHANGED, AT.timestamp())
    ]


async def test_a_placement_failure_is_shared_by_its_service() -> None:
    handler, workers, published = _handler()
    failure = ServicePlacementFailure(
        event_id="e-2",
        time=AT,
        cluster_arn=f"{ECS}:cluster/prod",
        service_arn=f"{ECS}:service/prod/web",
        reason="RESOURCE:CPU",
    )
    await handler(failure, AT)
    assert [n.instance_id for n in published] == [f"{ECS}:service/prod/web"]
    assert workers.heard == 1


async def test_another_clusters_event_is_neither_news_nor_shared() -> None:
    handler, workers, published = _handler()
    await handler(_instance_change("other"), AT)
    assert (workers.heard, published, workers.board.changed) == (0, [], {})


def test_a_shared_change_from_another_replica_reaches_the_leaders_board() -> None:
    from scaler.notices import shared

    board = NoticeBoard()
    board.merge([shared("i-1", CHANGED, 100.0)], now=200.0)
    assert board.changed == {"i-1": 100.0}
    board.prune(100.0 + 1201.0)
    assert board.changed == {}
