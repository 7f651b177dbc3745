"""The roll's pre-drain surge, as plain values: how much, when to drain, when to set back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaler.aws.surges import deployment, parse_roll, roll_value
from scaler.ecs.health import SETTLE, ServiceHealth, TaskHealth
from scaler.plan.roll import Deployment, SurgeMark, plan_surges, surge_for

WAIT = 600.0
CHECKED = ServiceHealth(checked=True)  # its containers have health checks


def svc(
    name: str = "web",
    desired: int = 4,
    running: int | None = None,
    min_healthy_percent: int = 100,
    max_percent: int = 200,
    mark: SurgeMark | None = None,
    busy: bool = False,
    tasks: tuple[TaskHealth, ...] | None = None,
    health: ServiceHealth = CHECKED,
) -> Deployment:
    """A service; its tasks all healthy unless ``tasks`` says otherwise."""
    run = desired if running is None else running
    seen = (TaskHealth("HEALTHY", 0.0),) * run if tasks is None else tasks
    fields = (name, desired, run, 0, min_healthy_percent, max_percent, False, mark, busy)
    return Deployment(*fields, seen, health)


deployments = st.builds(
    Deployment,
    name=st.just("web"),
    desired=st.integers(0, 50),
    running=st.integers(0, 60),
    pending=st.integers(0, 10),
    min_healthy_percent=st.integers(0, 200),
    max_percent=st.integers(100, 200),
    daemon=st.booleans(),
)


@given(deployments, st.integers(0, 20))
def test_a_surge_stays_within_maximum_percent(dep: Deployment, here: int) -> None:
    added = surge_for(here, dep)
    assert 0 <= added <= here
    if added:
        tasks = max(dep.desired, dep.running + dep.pending)
        assert tasks + added <= dep.desired * dep.max_percent // 100


@given(deployments, st.integers(0, 20))
def test_nothing_for_services_that_do_not_dip(dep: Deployment, here: int) -> None:
    if dep.min_healthy_percent >= 100 or dep.daemon:
        assert surge_for(here, dep) == 0


@given(st.lists(deployments, min_size=1, max_size=4), st.lists(st.integers(0, 8), min_size=4))
def test_a_plan_raises_within_room_and_only_services_that_dip(
    deps: list[Deployment], counts: list[int]
) -> None:
    services = {f"s{i}": Deployment(f"s{i}", *_fields(d)) for i, d in enumerate(deps)}
    here = {name: counts[i] for i, name in enumerate(services)}
    plan = plan_surges(["i-old"], {}, {"i-old": here}, services, {"i-old"}, (), 0.0, WAIT)
    for name, mark in plan.raises.items():
        dep = services[name]
        assert dep.min_healthy_percent < 100 and not dep.daemon
        assert mark.added == surge_for(here[name], dep) > 0
        assert mark.desired == dep.desired and mark.instance == "i-old"


def _fields(d: Deployment) -> tuple[int, int, int, int, int, bool]:
    return (d.desired, d.running, d.pending, d.min_healthy_percent, d.max_percent, d.daemon)


def test_surge_is_the_tasks_there_as_far_as_maximum_percent_allows() -> None:
    assert surge_for(3, svc(desired=4, min_healthy_percent=50, max_percent=200)) == 3
    assert surge_for(3, svc(desired=4, min_healthy_percent=50, max_percent=150)) == 2
    assert surge_for(3, svc(desired=4, min_healthy_percent=50, max_percent=100)) == 0
    assert surge_for(3, svc(desired=4, min_healthy_percent=100, max_percent=200)) == 0


def test_an_instance_waits_for_its_surge_then_drains_when_steady() -> None:
    web = svc(desired=4, min_healthy_percent=50)
    tasks = {"i-old": {"web": 2}}
    first = plan_surges(["i-old"], {}, tasks, {"web": web}, {"i-old"}, (), 100.0, WAIT)
    assert first.raises == {"web": SurgeMark(4, 2, "i-old", 100.0)}
    assert first.drain == () and first.waiting == {"i-old": 100.0}
    marked = svc(desired=6, running=4, min_healthy_percent=50, mark=first.raises["web"])
    second = plan_surges([], first.waiting, tasks, {"web": marked}, {"i-old"}, (), 160.0, WAIT)
    assert second.raises == {} and second.drain == ()
    steady = svc(desired=6, min_healthy_percent=50, mark=first.raises["web"])
    third = plan_surges([], second.waiting, tasks, {"web": steady}, {"i-old"}, (), 220.0, WAIT)
    assert third.drain == ("i-old",) and third.waiting == {}


def test_an_instance_drains_only_once_the_extra_tasks_are_healthy_not_just_running() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    tasks = {"i-old": {"web": 2}}
    old = (TaskHealth("HEALTHY", 0.0),) * 4

    def drained(extra: TaskHealth, health: ServiceHealth, now: float) -> bool:
        web = svc(
            desired=6, min_healthy_percent=50, mark=mark, tasks=old + (extra,) * 2, health=health
        )
        plan = plan_surges([], {"i-old": 100.0}, tasks, {"web": web}, {"i-old"}, (), now, WAIT)
        return plan.drain == ("i-old",)

    # container health checks: running is not enough, ECS must say HEALTHY
    assert not drained(TaskHealth("UNKNOWN", 150.0), CHECKED, 400.0)
    assert drained(TaskHealth("HEALTHY", 150.0), CHECKED, 400.0)
    # none: running for the grace period (at least SETTLE seconds)
    plain, grace = ServiceHealth(), ServiceHealth(grace=120.0)
    assert not drained(TaskHealth("UNKNOWN", 150.0), plain, 150.0 + SETTLE - 1)
    assert drained(TaskHealth("UNKNOWN", 150.0), plain, 150.0 + SETTLE)
    assert not drained(TaskHealth("UNKNOWN", 150.0), grace, 260.0)
    assert drained(TaskHealth("UNKNOWN", 150.0), grace, 270.0)
    # health not read: not drained before the wait is over
    unread = Deployment("web", 6, 6, 0, 50, 200, mark=mark)
    plan = plan_surges([], {"i-old": 100.0}, tasks, {"web": unread}, {"i-old"}, (), 400.0, WAIT)
    assert plan.drain == ()


def test_a_surge_that_never_settles_drains_after_the_wait() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    stuck = svc(desired=6, running=4, min_healthy_percent=50, mark=mark)
    tasks = {"i-old": {"web": 2}}
    early = plan_surges([], {"i-old": 100.0}, tasks, {"web": stuck}, {"i-old"}, (), 650.0, WAIT)
    assert early.drain == ()
    late = plan_surges([], {"i-old": 100.0}, tasks, {"web": stuck}, {"i-old"}, (), 700.0, WAIT)
    assert late.drain == ("i-old",)


def test_while_the_roll_is_paused_nothing_is_raised_or_drained_and_the_queue_waits() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    stuck = svc(desired=6, running=4, min_healthy_percent=50, mark=mark)
    tasks = {"i-old": {"web": 2}, "i-new": {"web": 1}}
    services = {"web": stuck}
    active = {"i-old", "i-new"}
    held = plan_surges(["i-new"], {"i-old": 100.0}, tasks, services, active, (), 800.0, WAIT, True)
    assert held.drain == () and held.raises == {}
    assert held.waiting == {"i-old": 100.0, "i-new": 800.0}
    after = plan_surges([], held.waiting, tasks, services, active, (), 900.0, WAIT)
    assert after.drain == ("i-old",)  # waited out, once the pause is over


def test_services_that_do_not_dip_drain_at_once() -> None:
    full = svc(desired=4, min_healthy_percent=100)
    plan = plan_surges(["i-old"], {}, {"i-old": {"web": 2}}, {"web": full}, {"i-old"}, (), 0, WAIT)
    assert plan.raises == {} and plan.drain == ("i-old",)


def test_the_count_is_set_back_once_the_drained_instance_holds_none_of_its_tasks() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    web = svc(desired=6, min_healthy_percent=50, mark=mark)
    still = plan_surges([], {}, {"i-old": {"web": 1}}, {"web": web}, (), {"i-old"}, 300.0, WAIT)
    assert still.set_back == {}
    done = plan_surges([], {}, {"i-old": {}}, {"web": web}, (), {"i-old"}, 400.0, WAIT)
    assert done.set_back == {"web": 4}
    gone = plan_surges([], {}, {}, {"web": web}, (), (), 400.0, WAIT)
    assert gone.set_back == {"web": 4}


def test_a_count_someone_else_changed_is_left_as_they_set_it() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    for desired in (3, 4, 5, 9):  # autoscaling or an operator changed it meanwhile
        web = svc(desired=desired, min_healthy_percent=50, mark=mark)
        plan = plan_surges([], {}, {}, {"web": web}, (), {"i-old"}, 400.0, WAIT)
        assert plan.set_back == {"web": None}


def test_a_marked_instance_is_taken_on_after_a_restart() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    web = svc(desired=6, min_healthy_percent=50, mark=mark)
    plan = plan_surges([], {}, {"i-old": {"web": 2}}, {"web": web}, {"i-old"}, (), 150.0, WAIT)
    assert plan.raises == {} and plan.drain == ("i-old",) and plan.set_back == {}


def test_a_marked_instance_no_longer_to_drain_gives_its_surge_back() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    web = svc(desired=6, min_healthy_percent=50, mark=mark)
    plan = plan_surges([], {"i-old": 100.0}, {"i-old": {"web": 2}}, {"web": web}, (), (), 150, WAIT)
    assert plan.set_back == {"web": 4} and plan.drain == () and plan.waiting == {}


def test_a_service_in_another_surge_is_not_raised_again_and_the_drain_waits() -> None:
    other = svc(desired=6, min_healthy_percent=50, mark=SurgeMark(4, 2, "i-a", 0.0))
    moving = svc("api", desired=3, min_healthy_percent=50, busy=True)
    tasks = {"i-a": {"web": 2}, "i-b": {"web": 1, "api": 1}}
    services = {"web": other, "api": moving}
    plan = plan_surges(["i-b"], {"i-a": 0.0}, tasks, services, {"i-a", "i-b"}, (), 10.0, WAIT)
    assert plan.raises == {}
    assert plan.drain == ("i-a",) and plan.waiting == {"i-b": 10.0}


def test_marks_read_back_from_tags() -> None:
    mark = SurgeMark(4, 2, "i-0abc", 1700000000.0)
    assert parse_roll(roll_value(mark)) == mark
    assert parse_roll("4 x i-0abc 1") is None and parse_roll("4 2 i-0abc") is None
    raw = {
        "serviceName": "web",
        "serviceArn": "arn:aws:ecs:us-east-1:1:service/c/web",
        "desiredCount": 6,
        "runningCount": 5,
        "pendingCount": 1,
        "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 200},
        "tags": [{"key": "scaler:roll-surge", "value": roll_value(mark)}],
    }
    assert deployment(raw) == Deployment("web", 6, 5, 1, 50, 200, False, mark, False)


def test_a_task_moves_surge_on_top_is_set_back_first() -> None:
    mark = SurgeMark(4, 2, "i-old", 100.0)
    moving = svc(desired=7, min_healthy_percent=50, mark=mark, busy=True)
    plan = plan_surges([], {}, {}, {"web": moving}, (), (), 400.0, WAIT)
    assert plan.set_back == {}
    settled = svc(desired=6, min_healthy_percent=50, mark=mark)
    assert plan_surges([], {}, {}, {"web": settled}, (), (), 460.0, WAIT).set_back == {"web": 4}
