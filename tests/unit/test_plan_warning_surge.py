"""The surge at spot interruption warnings, as plain values: which services, by how much, when
the warned instances drain, when the counts are set back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaler.aws.surges import parse_roll, roll_value
from scaler.plan.roll import Deployment, SurgeMark
from scaler.plan.warning_surge import drain_deadline, plan_warning_surges, warning_surge_for

NOW = 1000.0
DEADLINE = NOW + 90.0


def svc(
    name: str = "web",
    desired: int = 4,
    running: int | None = None,
    min_healthy_percent: int = 50,
    max_percent: int = 200,
    mark: SurgeMark | None = None,
    busy: bool = False,
    daemon: bool = False,
) -> Deployment:
    run = desired if running is None else running
    return Deployment(name, desired, run, 0, min_healthy_percent, max_percent, daemon, mark, busy)


def test_the_deadline_leaves_the_stop_time_before_the_interruption() -> None:
    assert drain_deadline(NOW, 30.0) == NOW + 90.0


@given(st.integers(0, 40), st.integers(0, 10), st.integers(100, 200), st.integers(0, 20))
def test_a_surge_stays_within_maximum_percent_of_the_count_before(
    desired: int, raised: int, max_percent: int, here: int
) -> None:
    mark = SurgeMark(desired, raised, "i-a:1", 0.0) if raised else None
    dep = svc(desired=desired + raised, max_percent=max_percent, mark=mark)
    added = warning_surge_for(here, dep)
    assert 0 <= added <= here
    if added:
        assert desired + raised + added <= desired * max_percent // 100


def test_every_service_but_a_daemon_is_raised_by_its_tasks_on_the_warned_instances() -> None:
    services = {
        "web": svc("web", desired=4, min_healthy_percent=50),
        "api": svc("api", desired=3, min_healthy_percent=100),  # replaced only once drained
        "agent": svc("agent", desired=2, daemon=True),
    }
    tasks = {"i-a": {"web": 2, "api": 1, "agent": 1}, "i-b": {"web": 1}}
    plan = plan_warning_surges({"i-a": DEADLINE, "i-b": DEADLINE}, tasks, services, (), {}, NOW)
    assert {n: m.raised for n, m in plan.raises.items()} == {"web": 7, "api": 4}
    assert plan.raises["web"] == SurgeMark(4, 3, "i-a+i-b:3", NOW)
    assert plan.drain == ()  # they wait for their services


def test_a_surge_is_bounded_by_maximum_percent() -> None:
    services = {"web": svc(desired=4, max_percent=150)}
    plan = plan_warning_surges({"i-a": DEADLINE}, {"i-a": {"web": 3}}, services, (), {}, NOW)
    assert plan.raises["web"].raised == 6


def test_a_later_warning_adds_a_step_to_the_surge() -> None:
    first = SurgeMark(4, 2, "i-a:2", 900.0)
    services = {"web": svc(desired=6, mark=first)}
    tasks = {"i-a": {"web": 2}, "i-b": {"web": 1}}
    plan = plan_warning_surges({"i-a": 990.0, "i-b": DEADLINE}, tasks, services, (), {}, NOW)
    assert plan.raises["web"] == SurgeMark(4, 3, "i-a:2,i-b:1", 900.0)
    assert parse_roll(roll_value(plan.raises["web"])) == plan.raises["web"]


def test_an_instance_drains_once_its_services_are_steady_and_healthy_or_at_its_deadline() -> None:
    mark = SurgeMark(4, 2, "i-a:2", 950.0)
    tasks = {"i-a": {"web": 2}}
    coming = {"web": svc(desired=6, running=4, mark=mark)}
    assert plan_warning_surges({"i-a": DEADLINE}, tasks, coming, (), {}, NOW).drain == ()
    late = plan_warning_surges({"i-a": DEADLINE}, tasks, coming, (), {}, DEADLINE)
    assert late.drain == ("i-a",)
    steady = {"web": svc(desired=6, running=6, mark=mark)}
    unknown = plan_warning_surges({"i-a": DEADLINE}, tasks, steady, (), {}, NOW)
    assert unknown.drain == ()  # running, but not known to be healthy: the deadline
    healthy = plan_warning_surges({"i-a": DEADLINE}, tasks, steady, {"web"}, {}, NOW)
    assert healthy.drain == ("i-a",)


def test_an_instance_whose_services_do_not_dip_drains_at_once() -> None:
    services = {"api": svc("api", desired=3, min_healthy_percent=100), "web": svc()}
    tasks = {"i-a": {"api": 2}, "i-b": {"api": 1, "web": 1}}
    plan = plan_warning_surges({"i-a": DEADLINE, "i-b": DEADLINE}, tasks, services, (), {}, NOW)
    assert plan.drain == ("i-a",)  # ECS replaces api's tasks first: nothing to wait for
    assert plan.raises["api"] == SurgeMark(3, 1, "i-b:1", NOW)  # i-b waits: api too


def test_an_instance_with_nothing_to_surge_drains_at_once() -> None:
    full = {"web": svc(desired=4, max_percent=100), "api": svc("api", busy=True)}
    tasks = {"i-a": {"web": 2, "api": 1}}
    plan = plan_warning_surges({"i-a": DEADLINE}, tasks, full, (), {}, NOW)
    assert plan.raises == {} and plan.drain == ("i-a",)


def test_the_count_is_set_back_once_every_instance_it_was_for_drained_or_went() -> None:
    mark = SurgeMark(4, 3, "i-a:2,i-b:1", 900.0)
    web = {"web": svc(desired=7, mark=mark)}
    one_left = plan_warning_surges({}, {}, web, (), {"i-a": "DRAINING", "i-b": "ACTIVE"}, NOW)
    assert one_left.set_back == {}
    drained = plan_warning_surges({}, {}, web, (), {"i-a": "DRAINING"}, NOW)
    assert drained.set_back == {"web": 4}  # i-b gone, i-a drained (its tasks replaced already)


def test_a_count_someone_else_changed_is_left_and_a_half_made_step_is_set_back() -> None:
    mark = SurgeMark(4, 3, "i-a:2,i-b:1", 900.0)
    for desired, to in ((7, 4), (6, 4), (5, None), (9, None), (4, None)):
        web = {"web": svc(desired=desired, mark=mark)}
        plan = plan_warning_surges({}, {}, web, (), {}, NOW)
        assert plan.set_back == {"web": to}, desired


def test_a_move_surge_on_top_waits() -> None:
    mark = SurgeMark(4, 2, "i-a:2", 900.0)
    web = {"web": svc(desired=7, mark=mark, busy=True)}
    assert plan_warning_surges({}, {}, web, (), {}, NOW).set_back == {}


def test_a_roll_mark_reads_as_one_step_for_its_instance() -> None:
    mark = SurgeMark(4, 2, "i-old", 900.0)
    assert mark.steps == ((("i-old",), 2),) and mark.instances == ("i-old",)
    assert mark.surged(6) and not mark.surged(4)


def test_only_the_services_that_dip_hold_the_drain_back() -> None:
    web = svc("web", desired=6, mark=SurgeMark(4, 2, "i-a:2", 950.0))
    api = svc(
        "api", desired=4, running=3, min_healthy_percent=100, mark=SurgeMark(3, 1, "i-a:1", 950.0)
    )
    tasks = {"i-a": {"web": 2, "api": 1}}
    services = {"web": web, "api": api}
    ready = plan_warning_surges({"i-a": DEADLINE}, tasks, services, {"web"}, {}, NOW)
    assert ready.drain == ("i-a",)  # api's old task stays until its new one is healthy
    unhealthy = plan_warning_surges({"i-a": DEADLINE}, tasks, services, (), {}, NOW)
    assert unhealthy.drain == ()
    full = {"web": svc("web", desired=4, max_percent=100), "api": api}
    unsurged = plan_warning_surges({"i-a": DEADLINE}, tasks, full, {"web"}, {}, NOW)
    assert unsurged.drain == ()  # web keeps serving there until the deadline
