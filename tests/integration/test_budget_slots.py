"""The disruption budget shared in the lease table (moto over HTTP): replicas' drain gates never
hold more slots than the budget together; an expired slot is taken over; a freed one is free."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from scaler import testbed
from scaler.aws.budget_slots import DynamoSlots
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.drain_gate import DrainGate
from scaler.aws.ecs import InstanceDirectory
from scaler.clock import ManualClock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.budget_slots import Slot
from tests.integration.helpers import lease_table, wait_for

TABLE = "scaler-lease"
HOLD = 900.0  # a slot lasts this long unless freed or taken over (the drain timeout)


def _table(aws: testbed.LocalAws) -> None:
    lease_table(aws, TABLE)


@asynccontextmanager
async def _clients(aws: testbed.LocalAws) -> AsyncIterator[AwsClients]:
    _table(aws)
    target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics()) as clients:
        yield clients


def _holders(clients: AwsClients, n: int, cluster: str = "prod") -> list[DynamoSlots]:
    return [DynamoSlots(clients.dynamodb, TABLE, cluster, f"r{k}", HOLD) for k in range(n)]


def _index(slot: Slot) -> int:
    return slot.index


async def test_two_holders_never_take_more_slots_than_the_budget(
    local_aws: testbed.LocalAws,
) -> None:
    budget, now = 2, 1_800_000_000.0
    async with _clients(local_aws) as clients:
        a, b = _holders(clients, 2)
        # both replicas try every slot for their own instances, turn about (one after another:
        # DynamoDB makes concurrent conditional writes atomic, moto's server does not)
        tries = [
            holder.take(index, f"i-{name}{k}", None, now)
            for k, holder, name in ((0, a, "a"), (0, b, "b"), (1, a, "a"), (1, b, "b"))
            for index in range(budget)
        ]
        taken = [await attempt for attempt in tries]
        won = sorted((s for s in taken if s is not None), key=_index)
        assert [s.index for s in won] == [0, 1]
        held = await a.read()
        assert [(s.index, s.instance_id) for s in held] == [(s.index, s.instance_id) for s in won]


async def test_an_expired_slot_is_taken_over_and_a_live_one_is_not(
    local_aws: testbed.LocalAws,
) -> None:
    now = 1_800_000_000.0
    async with _clients(local_aws) as clients:
        a, b = _holders(clients, 2)
        first = await a.take(0, "i-1", None, now)
        assert first is not None and first.expires == now + HOLD
        assert await b.take(0, "i-2", None, now + 10) is None  # in use, and b saw nothing
        later = await b.take(0, "i-2", None, now + HOLD + 1)  # a crashed: its slot expired
        assert later is not None and later.holder == "r1"
        assert [(s.instance_id, s.holder) for s in await a.read()] == [("i-2", "r1")]


async def test_a_slot_seen_as_finished_is_taken_over_only_as_seen(
    local_aws: testbed.LocalAws,
) -> None:
    """A slot whose instance's tasks have moved is taken over on the condition that it still
    holds what was read: of two replicas taking it over, one wins."""
    now = 1_800_000_000.0
    async with _clients(local_aws) as clients:
        a, b, c = _holders(clients, 3)
        await a.take(0, "i-1", None, now)
        (seen,) = await b.read()
        won = await asyncio.gather(
            b.take(0, "i-2", seen, now + 60), c.take(0, "i-3", seen, now + 60)
        )
        assert sum(s is not None for s in won) == 1


async def test_the_same_instance_takes_its_slot_again(local_aws: testbed.LocalAws) -> None:
    """A recommendation redelivered after its replica crashed before draining."""
    now = 1_800_000_000.0
    async with _clients(local_aws) as clients:
        a, b = _holders(clients, 2)
        await a.take(0, "i-1", None, now)
        again = await b.take(0, "i-1", None, now + 30)
        assert again is not None and again.holder == "r1"


async def test_a_freed_slot_is_free_and_only_its_holder_frees_it(
    local_aws: testbed.LocalAws,
) -> None:
    now = 1_800_000_000.0
    async with _clients(local_aws) as clients:
        a, b = _holders(clients, 2)
        mine = await a.take(0, "i-1", None, now)
        assert mine is not None
        await b.release(Slot(0, "i-1", "r1", now, now + HOLD))  # not b's: no effect
        assert await b.take(0, "i-2", None, now + 1) is None
        await a.release(mine)
        assert await b.take(0, "i-2", None, now + 2) is not None


async def test_clusters_sharing_a_table_have_their_own_slots(local_aws: testbed.LocalAws) -> None:
    now = 1_800_000_000.0
    async with _clients(local_aws) as clients:
        (prod,), (stage,) = _holders(clients, 1, "prod"), _holders(clients, 1, "stage")
        assert await prod.take(0, "i-1", None, now) is not None
        assert await stage.take(0, "i-9", None, now) is not None
        assert [s.instance_id for s in await prod.read()] == ["i-1"]


# -- two drain gates on one table ---------------------------------------------------------


def _instances(aws: testbed.LocalAws, size: int) -> list[ContainerInstance]:
    """Container instances of a fresh cluster, each with a task's worth of CPU and memory used
    (moto's instances have room elsewhere for it)."""
    testbed.create_cluster(aws, "prod", size=size)
    ecs = aws.client("ecs")
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    return [
        ContainerInstance(
            arn=ci["containerInstanceArn"],
            ec2_instance_id=ci["ec2InstanceId"],
            status="ACTIVE",
            cpu=2048,
            memory=4096,
            free_cpu=1792,
            free_memory=3840,
        )
        for ci in described["containerInstances"]
    ]


def _gate(clients: AwsClients, clock: ManualClock, me: str, share: float) -> DrainGate:
    directory = InstanceDirectory(clients.ecs, "prod", clock, ttl=60.0)
    return DrainGate(
        directory,
        clock,
        share=share,
        expire_after=600.0,
        poll=0.05,
        slots=DynamoSlots(clients.dynamodb, TABLE, "prod", me, HOLD),
        skew=5.0,
    )


class _Waits:
    """Recommendations waiting at gates: which were admitted."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[bool]] = {}

    def start(self, gate: DrainGate, instances: list[ContainerInstance], now: float) -> None:
        for ci in instances:
            self.tasks[ci.ec2_instance_id] = asyncio.create_task(gate.wait(ci, now))

    def admitted(self) -> set[str]:
        return {iid for iid, t in self.tasks.items() if t.done() and t.result() is True}

    async def settle(self, count: int) -> set[str]:
        """Wait for ``count`` admissions, then for many more decisions (none may admit more);
        the rest stay held and are cancelled."""
        await wait_for(lambda: len(self.admitted()) >= count)
        await asyncio.sleep(0.5)  # ten polls of each gate
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        admitted = {iid for iid, t in self.tasks.items() if not t.cancelled() and t.result()}
        self.tasks.clear()
        return admitted


async def test_two_gates_sharing_a_table_admit_at_most_the_budget(
    local_aws: testbed.LocalAws,
) -> None:
    """20 instances, a budget of 10%: two replicas, each recommended ten instances at the same
    moment, admit two drains between them, not two each."""
    instances = _instances(local_aws, 20)
    clock = ManualClock()
    now = clock.now().timestamp()
    async with _clients(local_aws) as clients:
        a, b = _gate(clients, clock, "r0", 0.1), _gate(clients, clock, "r1", 0.1)
        waits = _Waits()
        waits.start(a, instances[:10], now)
        waits.start(b, instances[10:], now)
        admitted = await waits.settle(2)
        assert len(admitted) == 2, admitted
        slots = await DynamoSlots(clients.dynamodb, TABLE, "prod", "r9", HOLD).read()
        assert {s.instance_id for s in slots} == admitted


async def test_a_drain_that_did_not_happen_frees_its_slot_for_the_other_gate(
    local_aws: testbed.LocalAws,
) -> None:
    instances = _instances(local_aws, 10)  # a budget of one
    clock = ManualClock()
    now = clock.now().timestamp()
    async with _clients(local_aws) as clients:
        a, b = _gate(clients, clock, "r0", 0.1), _gate(clients, clock, "r1", 0.1)
        waits = _Waits()
        waits.start(a, instances[:1], now)
        (first,) = await waits.settle(1)
        waits.start(b, instances[1:2], now)
        await asyncio.sleep(0.5)  # ten polls: a holds the budget
        assert waits.admitted() == set()
        await a.done(first, draining=False)  # its drain failed: nothing disrupts
        assert await waits.settle(1) == {instances[1].ec2_instance_id}


async def test_a_budget_that_shrank_since_the_admission_lets_only_what_it_holds_drain(
    local_aws: testbed.LocalAws,
) -> None:
    """20 instances, 10%: two admitted. While their services surge, spot takes three (17 left,
    a budget of one): when their drains come, one goes, the other gives its slot back."""
    instances = _instances(local_aws, 20)
    clock = ManualClock()
    now = clock.now().timestamp()
    async with _clients(local_aws) as clients:
        gate = _gate(clients, clock, "r0", 0.1)
        waits = _Waits()
        waits.start(gate, instances[:2], now)
        await wait_for(lambda: len(waits.admitted()) == 2)
        for ci in instances[-3:]:
            local_aws.client("ecs").deregister_container_instance(
                cluster="prod", containerInstance=ci.arn, force=True
            )
        clock.advance(30.0)  # the surge took its time
        first, second = (ci.ec2_instance_id for ci in instances[:2])
        assert await gate.confirm(first) is False, "the other admitted one fills the budget"
        assert await gate.confirm(second) is True
        slots = await DynamoSlots(clients.dynamodb, TABLE, "prod", "r9", HOLD).read()
        held = [s.instance_id for s in slots if s.expires > clock.now().timestamp()]
        assert held == [second], "the other slot given back"
        assert await gate.confirm(first) is False, "no longer admitted: it waits again"
