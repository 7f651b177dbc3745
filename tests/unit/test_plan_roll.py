"""The roll planner (:mod:`scaler.plan.roll`): replacement first, budgets, pause, surges.

Covered: replacements are launched per AZ before anything drains; an AZ drains (emptiest
first) only once nothing there is launching, as many as replacements were waiting; the
disruption and hourly budgets; the pause on spot trouble; instances taken already or not out of
date are never drained; :meth:`RollState.failed`; and a property test over random clusters,
including an immediate re-plan with the plan carried out. The pre-drain surge has its own tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import (
    ACTIVE,
    DRAINING,
    LAUNCHING,
    RUNNING,
    Cluster,
    Instance,
    InstanceType,
    ServiceSpec,
)
from scaler.plan.roll import (
    RollPlan,
    RollPolicy,
    RollState,
    disruption_budget,
    machines,
    plan_roll,
)

M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
NOW = 100_000.0
LOOSE = RollPolicy(max_disrupted=1.0, max_per_hour=100)


def fleet(*azs: str) -> Cluster:
    """One ACTIVE instance per AZ given, ``i-00``, ``i-01``, ... in order."""
    cluster = Cluster()
    for n, az in enumerate(azs):
        inst = cluster.launch("p", M5, az, "spot", 0.07, 0.0, id=f"i-{n:02d}")
        cluster.register(inst, 0.0)
    return cluster


def launching(cluster: Cluster, az: str) -> Instance:
    """A new instance in ``az`` that has not registered yet."""
    return cluster.launch("p", M5, az, "spot", 0.07, NOW, id=f"i-new-{len(cluster.instances)}")


def give_tasks(cluster: Cluster, inst: Instance, running: int, pending: int = 0) -> None:
    """``running`` RUNNING and ``pending`` PENDING tasks of a service ``web`` on ``inst``."""
    state = cluster.services.get("web") or cluster.add_service(ServiceSpec("web", 99, 128, 128))
    for n in range(running + pending):
        task = cluster.start_task(state, inst, inst.az, 0.0)
        if n < running:
            cluster.mark_running(task)


def roll(
    cluster: Cluster,
    outdated: Collection[str],
    state: RollState | None = None,
    policy: RollPolicy = LOOSE,
    ours: Collection[str] = (),
    replaced_last_hour: int = 0,
) -> RollPlan:
    return plan_roll(
        machines(cluster.instances),
        outdated,
        NOW,
        policy,
        state or RollState(),
        ours=ours,
        replaced_last_hour=replaced_last_hour,
    )


def disrupted(plan: RollPlan, ours: Collection[str]) -> int:
    return len(set(ours)) + len(plan.drain) + plan.state.in_flight


# -- replacement first ----------------------------------------------------------------------


def test_out_of_date_instances_get_replacements_per_az_and_nothing_drains() -> None:
    cluster = fleet(A, A, A, B, B, C, A, B, C)
    plan = roll(cluster, {f"i-{n:02d}" for n in range(6)})
    assert plan.launch == {A: 3, B: 2, C: 1}
    assert plan.drain == ()
    assert plan.state.waiting == {A: 3, B: 2, C: 1}


def test_an_az_with_an_instance_launching_drains_nothing() -> None:
    cluster = fleet(A, A, B, B)
    launching(cluster, A)
    plan = roll(cluster, set(cluster.instances), RollState({A: 2, B: 1}))
    assert [cluster.instances[i].az for i in plan.drain] == [B]  # B has nothing launching
    assert plan.state.waiting[A] == 2
    assert A not in plan.launch  # both out-of-date instances there have a replacement coming


def emptiest_setup() -> Cluster:
    cluster = fleet(A, A, A, A, B)
    for iid, running, pending in [("i-00", 3, 0), ("i-01", 0, 4), ("i-02", 2, 0), ("i-03", 1, 0)]:
        give_tasks(cluster, cluster.instances[iid], running, pending)
    return cluster


def test_once_nothing_launches_the_emptiest_out_of_date_instances_drain() -> None:
    cluster = emptiest_setup()
    stale = {"i-00", "i-01", "i-02", "i-03"}
    exhausted = RollPolicy(max_disrupted=1.0, max_per_hour=2)  # no room for more launches
    plan = roll(cluster, stale, RollState({A: 2}), exhausted)
    assert plan.drain == ("i-01", "i-03")  # fewest RUNNING tasks (PENDING ones do not count)
    assert plan.launch == {} and plan.state.waiting == {}


def test_after_a_drain_the_az_waits_only_for_new_launches() -> None:
    cluster = emptiest_setup()
    plan = roll(cluster, {"i-00", "i-01", "i-02", "i-03"}, RollState({A: 2}))
    assert len(plan.drain) == 2
    assert plan.launch == {A: 2}  # the two left out of date
    assert plan.state.waiting == {A: 2}  # not 2 + 2: the old replacements were matched


def test_replacements_beyond_what_is_out_of_date_become_plain_capacity() -> None:
    cluster = fleet(A, A)
    plan = roll(cluster, {"i-00"}, RollState({A: 3}))
    assert plan.drain == ("i-00",)
    assert plan.state.waiting == {}


# -- budgets --------------------------------------------------------------------------------


def test_disruption_budget_counts_ours_drains_and_waiting_replacements() -> None:
    cluster = fleet(*[A, B] * 10)  # 20 live instances
    ours = {"i-00", "i-01"}
    for iid in ours:
        cluster.drain(cluster.instances[iid])
    launching(cluster, B)
    policy = RollPolicy(max_disrupted=0.25, max_per_hour=100)  # 5 at once
    plan = roll(cluster, set(cluster.instances), RollState({B: 1}), policy, ours)
    assert sum(plan.launch.values()) == 2  # 5 - 2 draining - 1 waiting
    assert disrupted(plan, ours) == 5


def test_no_launch_once_the_disruption_budget_is_spent() -> None:
    cluster = fleet(*[A, B] * 10)
    policy = RollPolicy(max_disrupted=0.25, max_per_hour=100)
    launching(cluster, A)
    plan = roll(cluster, set(cluster.instances), RollState({A: 5}), policy)
    assert plan.launch == {} and plan.drain == ()


@pytest.mark.parametrize(("replaced", "launches"), [(0, 5), (2, 3), (5, 0), (7, 0)])
def test_launches_stop_at_the_hourly_budget(replaced: int, launches: int) -> None:
    cluster = fleet(*[A, B, C] * 6)
    policy = RollPolicy(max_disrupted=1.0, max_per_hour=5)
    plan = roll(cluster, set(cluster.instances), policy=policy, replaced_last_hour=replaced)
    assert sum(plan.launch.values()) == launches
    assert max(plan.launch.values(), default=0) - min(plan.launch.values(), default=0) <= 1


# -- pause ----------------------------------------------------------------------------------


def paused_plan(cause: str) -> tuple[RollPlan, RollState]:
    """A roll that would drain i-00 and launch in B, with one cause of a pause (or none)."""
    cluster = fleet(A, B, B, C)
    state = RollState({A: 1})
    if cause in ("draining", "ours"):
        cluster.drain(cluster.instances["i-03"])
    trouble = {"trouble": NOW - 60, "over": NOW - LOOSE.pause_after}.get(cause)
    plan = plan_roll(
        machines(cluster.instances),
        {"i-00", "i-01", "i-02"},
        NOW,
        LOOSE,
        state,
        ours={"i-03"} if cause == "ours" else (),
        unplaced=1 if cause == "unplaced" else 0,
        doomed={"i-03"} if cause == "doomed" else (),
        last_trouble=trouble,
    )
    return plan, state


@pytest.mark.parametrize("cause", ["doomed", "draining", "unplaced", "trouble"])
def test_a_storm_pauses_the_roll(cause: str) -> None:
    plan, state = paused_plan(cause)
    assert plan.launch == {} and plan.drain == ()
    assert plan.state == state
    assert len(plan.reasons) == 1 and plan.reasons[0].startswith("paused")
    assert plan.paused  # and instances waiting for their surges wait too


def test_a_storm_pauses_the_roll_with_only_surge_waits_left() -> None:
    cluster = fleet(A, B)
    waiting = {"i-00"}  # accepted before the storm, its services surging: ours
    plan = plan_roll(
        machines(cluster.instances), waiting, NOW, LOOSE, RollState(), ours=waiting, doomed={"i-01"}
    )
    assert plan.paused and plan.drain == () and plan.launch == {}


@pytest.mark.parametrize("cause", ["none", "over", "ours"])
def test_without_a_storm_the_roll_goes_on(cause: str) -> None:
    plan, _ = paused_plan(cause)
    assert plan.drain == ("i-00",)
    assert plan.launch == {B: 2}
    assert not plan.paused


# -- what may be chosen ---------------------------------------------------------------------


def test_instances_already_ours_are_never_chosen_again() -> None:
    cluster = fleet(A, A, A, A, B, B, B, B)
    give_tasks(cluster, cluster.instances["i-02"], 1)
    give_tasks(cluster, cluster.instances["i-03"], 2)
    ours = {"i-00", "i-01"}  # the emptiest, about to drain for a consolidation
    outdated = {"i-00", "i-01", "i-02", "i-03"}
    assert roll(cluster, outdated, RollState({A: 3}), ours=ours).drain == ("i-02", "i-03")
    assert roll(cluster, outdated, ours=ours).launch == {A: 2}  # budget 8 - 2, two left


def test_only_active_out_of_date_instances_drain() -> None:
    cluster = fleet(A, A, A, A)
    give_tasks(cluster, cluster.instances["i-00"], 3)
    cluster.drain(cluster.instances["i-01"])
    outdated = {"i-00", "i-01", "i-new"}  # i-02 and i-03 are empty but up to date
    plan = roll(cluster, outdated, RollState({A: 4}), ours={"i-01"})
    assert plan.drain == ("i-00",)


def test_failed_launches_reduce_what_is_waited_for() -> None:
    state = RollState({A: 2, B: 1})
    assert state.failed(A).waiting == {A: 1, B: 1}
    assert state.failed(B, 5).waiting == {A: 2, B: 0}
    assert RollState().failed(C).in_flight == 0
    cluster = fleet(A, A, A)
    assert len(roll(cluster, set(cluster.instances), state.failed(A)).drain) == 1


def test_nothing_out_of_date_and_nothing_waiting_is_an_empty_plan() -> None:
    cluster = fleet(A, B)
    assert roll(cluster, ()) == RollPlan()
    assert roll(cluster, (), RollState({A: 0})).state.waiting == {}


# -- surges before a drain ------------------------------------------------------------------


# -- properties -----------------------------------------------------------------------------

KINDS = ["launching"] + ["active"] * 6 + ["draining-ours", "active-ours"]
Drawn = tuple[Cluster, set[str], set[str], RollState, RollPolicy, int]


def add_instance(draw: st.DrawFn, cluster: Cluster, n: int) -> tuple[Instance, str]:
    """An instance of a drawn kind, in a drawn AZ, with drawn RUNNING and PENDING tasks."""
    az, kind = draw(st.sampled_from([A, B, C])), draw(st.sampled_from(KINDS))
    inst = cluster.launch("p", M5, az, "spot", 0.07, 0.0, id=f"i-{n:02d}")
    if kind != "launching":
        cluster.register(inst, 0.0)
        give_tasks(cluster, inst, draw(st.integers(0, 3)), draw(st.integers(0, 1)))
    if kind == "draining-ours":
        cluster.drain(inst)
    return inst, kind


@st.composite
def rolls(draw: st.DrawFn) -> Drawn:
    cluster, outdated, ours = Cluster(), set[str](), set[str]()
    for n in range(draw(st.integers(1, 30))):
        inst, kind = add_instance(draw, cluster, n)
        if draw(st.integers(0, 3)):  # three in four out of date
            outdated.add(inst.id)
        if kind.endswith("ours"):
            ours.add(inst.id)
    waiting = draw(st.dictionaries(st.sampled_from([A, B, C]), st.integers(0, 3), max_size=2))
    share = draw(st.sampled_from([0.1, 0.2, 0.34, 0.5, 1.0]))
    policy = RollPolicy(share, draw(st.integers(0, 40)))
    return cluster, outdated, ours, RollState(waiting), policy, draw(st.integers(0, 10))


def live(cluster: Cluster) -> int:
    return sum(1 for i in cluster.instances.values() if i.status in (ACTIVE, DRAINING))


def running(inst: Instance) -> int:
    return sum(1 for t in inst.tasks.values() if t.state == RUNNING)


def launching_azs(cluster: Cluster) -> set[str]:
    return {i.az for i in cluster.instances.values() if i.status == LAUNCHING}


def left_out_of_date(cluster: Cluster, drawn: Drawn, plan: RollPlan, az: str) -> list[Instance]:
    """Out-of-date ACTIVE instances in ``az`` the plan neither drains nor found taken."""
    _, outdated, ours, _, _, _ = drawn
    taken = {*ours, *plan.drain}
    return [
        i
        for i in cluster.instances.values()
        if i.az == az and i.id in outdated and i.status == ACTIVE and i.id not in taken
    ]


def check_drains(cluster: Cluster, drawn: Drawn, plan: RollPlan) -> None:
    _, outdated, ours, state, _, _ = drawn
    for iid in plan.drain:
        inst = cluster.instances[iid]
        assert iid in outdated and inst.status == ACTIVE and iid not in ours
        assert inst.az not in launching_azs(cluster)
        others = left_out_of_date(cluster, drawn, plan, inst.az)
        assert all(running(inst) <= running(other) for other in others)  # emptiest first
    per_az = Counter(cluster.instances[i].az for i in plan.drain)
    assert all(n <= state.waiting.get(az, 0) for az, n in per_az.items())


def check_launches(cluster: Cluster, drawn: Drawn, plan: RollPlan) -> None:
    """A launch per out-of-date instance left without a replacement, at most."""
    for az, n in plan.launch.items():
        assert 0 < n <= plan.state.waiting[az]
        assert plan.state.waiting[az] <= len(left_out_of_date(cluster, drawn, plan, az))


def check_budgets(cluster: Cluster, drawn: Drawn, plan: RollPlan) -> None:
    _, _, ours, state, policy, replaced = drawn
    budget = disruption_budget(policy.max_disrupted, live(cluster))
    if len(ours) + state.in_flight <= budget:
        assert disrupted(plan, ours) <= budget
    if replaced + state.in_flight <= policy.max_per_hour:
        assert replaced + len(plan.drain) + plan.state.in_flight <= policy.max_per_hour


def carry_out(cluster: Cluster, ours: set[str], plan: RollPlan) -> set[str]:
    """Drain what the plan drains and start its launches; ``ours`` afterwards."""
    for iid in plan.drain:
        assert cluster.drain(cluster.instances[iid])
    for az, count in plan.launch.items():
        for _ in range(count):
            launching(cluster, az)
    return ours | set(plan.drain)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(rolls())
def test_random_rolls_keep_to_their_choices_and_budgets(drawn: Drawn) -> None:
    cluster, outdated, ours, state, policy, replaced = drawn
    plan = roll(cluster, outdated, state, policy, ours, replaced)
    check_drains(cluster, drawn, plan)
    check_launches(cluster, drawn, plan)
    check_budgets(cluster, drawn, plan)
    # right away again, the plan carried out: every AZ waited for is launching, none drains,
    # and the budgets the first plan used up leave nothing more to launch
    ours = carry_out(cluster, ours, plan)
    assert set(plan.state.waiting) <= launching_azs(cluster)
    again = roll(cluster, outdated, plan.state, policy, ours, replaced + len(plan.drain))
    assert again.drain == () and again.launch == {}
    assert again.state == plan.state


def test_a_small_cluster_is_rolled_one_instance_at_a_time() -> None:
    cluster = fleet(A, A, B, B, C)  # 10% of 5 rounds down to 0: the budget is still one
    plan = roll(cluster, set(cluster.instances), policy=RollPolicy())
    assert sum(plan.launch.values()) == 1
    assert disruption_budget(0.1, 5) == 1 and disruption_budget(0.1, 1) == 0
    assert disruption_budget(0.1, 25) == 2


def test_a_replacement_that_never_arrived_drains_nothing() -> None:
    cluster = fleet(A, A, A)
    old = {"i-00", "i-01"}
    first = roll(cluster, old, policy=RollPolicy(max_disrupted=0.34))
    assert first.launch == {A: 1} and first.state.baseline == {A: 1}  # i-02 is up to date
    # the launch failed without a trace: nothing launching, nothing new
    assert roll(cluster, old, first.state).drain == ()
    new = launching(cluster, A)
    cluster.register(new, NOW)
    assert roll(cluster, old, first.state).drain == ("i-00",)


def test_no_replacement_is_asked_of_a_blocked_place() -> None:
    cluster = fleet(A, B)
    plan = plan_roll(
        machines(cluster.instances), {"i-00", "i-01"}, NOW, LOOSE, RollState(), blocked={A}
    )
    assert plan.launch == {B: 1}
