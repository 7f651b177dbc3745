"""Tests for scaler.events: example AWS payloads, malformed variants and properties.

The example payloads are in ``tests/fixtures/events`` (its README says which AWS format each
one follows and which odd details it keeps on purpose). The tests read them relative to this
file, so they need nothing outside the repository.
"""

import json
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.events import (
    MAX_BODY_BYTES,
    SIGNAL_KINDS,
    ContainerInstanceChange,
    Ignored,
    InstanceStateChange,
    LifecycleTerminate,
    MalformedEvent,
    RebalanceRecommendation,
    ScheduledChange,
    ServicePlacementFailure,
    Signal,
    SpotInterruption,
    TaskStateChange,
    instance_ids,
    parse_event,
)

EVENTS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "events"
REASONS = {"too_large", "not_json", "not_object", "invalid_envelope", "invalid_detail"}

SPOT = "ec2-spot-instance-interruption-warning.json"
REBALANCE = "ec2-instance-rebalance-recommendation.json"
STATE = "ec2-instance-state-change-notification.json"
LIFECYCLE = "autoscaling-ec2-instance-terminate-lifecycle-action.json"
HEALTH = "aws-health-ec2-scheduled-change.json"
CONTAINER_INSTANCE = "ecs-container-instance-state-change.json"
TASK = "ecs-task-state-change.json"
PLACEMENT = "ecs-service-action-task-placement-failure-ec2.json"
FARGATE_SNIPPET = "ecs-task-state-change-fargate-spot-interruption.snippet.txt"
DOC_SPOT = "aws-doc-variants/ec2-spot-instance-interruption-warning.awsdoc.json"
DOC_REBALANCE = "aws-doc-variants/ec2-instance-rebalance-recommendation.awsdoc.json"
DOC_STATE = "aws-doc-variants/ec2-instance-state-change-notification.awsdoc.json"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


ECS_EUW1 = "arn:aws:ecs:eu-west-1:111122223333"
ECS_EUC1 = "arn:aws:ecs:eu-central-1:111122223333"
SPOT_ID = "i-06635483f437ca845"
HEALTH_ID = "i-7a1c3e5f"
DOC_EC2_ID = "i-0abcdef1234567890"
DOC_ID = "abcdef01-2345-6789-abcd-ef0123456789"

GOLDEN: dict[str, Signal] = {
    SPOT: SpotInterruption(
        event_id="336b1da8-ffda-4d54-ae3b-9a7b5b7bf6a6",
        time=utc(2026, 3, 14, 9, 26, 53),
        instance_id=SPOT_ID,
        action="terminate",
    ),
    REBALANCE: RebalanceRecommendation(
        event_id="4acbdbad-d6a3-4aa4-9c62-e211a2890b12",
        time=utc(2026, 3, 14, 9, 21, 7),
        instance_id=SPOT_ID,
    ),
    STATE: InstanceStateChange(
        event_id="2a2e9acc-d989-4d96-862b-1222cd0e3ec0",
        time=utc(2026, 2, 2, 7, 45, 12),
        instance_id="i-0b9e411b13298ef28",
        state="shutting-down",
    ),
    LIFECYCLE: LifecycleTerminate(
        event_id="ec31b399-888b-4b89-b2b9-b7e3cc5c9c4b",
        time=utc(2026, 1, 19, 18, 3, 41),
        instance_id="i-06f8568685282463f",
        group_name="ecs-spot.workers-c5a1e2f0.example.net",
        hook_name="scaler-drain-before-terminate",
        token="65e679fd-d4c4-4168-a3fb-e073040d043d",
        transition="autoscaling:EC2_INSTANCE_TERMINATING",
    ),
    HEALTH: ScheduledChange(
        event_id="3e9c0f12-5b7a-4d2e-8c61-40qz218k5e07",
        time=utc(2026, 4, 7, 11, 2, 33),
        instance_ids=(HEALTH_ID,),
        start_time=utc(2026, 4, 21, 4, 30),
        event_type_code="AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
    ),
    CONTAINER_INSTANCE: ContainerInstanceChange(
        event_id="b354e9f7-7aeb-49da-9ad4-2bc8950b8430",
        time=utc(2026, 3, 14, 9, 27, 1),
        cluster_arn=f"{ECS_EUW1}:cluster/spot-workers",
        container_instance_arn=f"{ECS_EUW1}:container-instance/2a4f2c8d-921c-4c7b-a908-a32d5368be03",
        ec2_instance_id="i-7c3d91e2",
        status="DRAINING",
        version=27,
    ),
    TASK: TaskStateChange(
        event_id="8f1abb9c-d05e-4ccd-b003-87b3cf43cc8a",
        time=utc(2026, 2, 20, 13, 14, 29),
        cluster_arn=f"{ECS_EUC1}:cluster/web-fargate",
        task_arn=f"{ECS_EUC1}:task/web-fargate/5389fecd702a3fc0a30f931eb316daec",
        last_status="RUNNING",
        desired_status="RUNNING",
        stop_code=None,
        group="service:web",
        container_instance_arn=None,
        version=3,
    ),
    PLACEMENT: ServicePlacementFailure(
        event_id="309ed398-140f-497d-8902-3f9f13af3878",
        time=utc(2026, 2, 20, 13, 40, 5),
        cluster_arn=f"{ECS_EUC1}:cluster/spot-workers",
        service_arn=f"{ECS_EUC1}:service/spot-workers/checkout",
        reason="RESOURCE:CPU",
    ),
    DOC_SPOT: SpotInterruption(event_id=DOC_ID, time=None, instance_id=DOC_EC2_ID, action="action"),
    DOC_REBALANCE: RebalanceRecommendation(event_id=DOC_ID, time=None, instance_id=DOC_EC2_ID),
    DOC_STATE: InstanceStateChange(
        event_id="381dc2c7-a066-488a-9ed6-9780b4b0c652",
        time=utc(2026, 1, 5, 16, 20, 45),
        instance_id="i-0cb8d562497a3d450",
        state="pending",
    ),
}
EC2_FILES = [SPOT, REBALANCE, STATE, DOC_SPOT, DOC_REBALANCE, DOC_STATE]


@cache
def raw(name: str) -> str:
    return (EVENTS_DIR / name).read_text(encoding="utf-8")


def payload(name: str) -> dict[str, Any]:
    """A fresh, mutable copy of an example payload."""
    data: dict[str, Any] = json.loads(raw(name))
    return data


def malformed(body: str | bytes) -> MalformedEvent:
    with pytest.raises(MalformedEvent) as info:
        parse_event(body)
    return info.value


def reason_for(data: Any) -> str:
    return malformed(json.dumps(data)).reason


def assert_signal_or_malformed(body: str | bytes) -> None:
    try:
        signal = parse_event(body)
    except MalformedEvent as exc:
        assert exc.reason in REASONS
        assert len(str(exc)) <= 200
    else:
        assert isinstance(signal, Signal)
        assert signal.KIND in SIGNAL_KINDS
        assert signal.time is None or signal.time.tzinfo is UTC


# --- golden payloads ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_payload(name: str) -> None:
    assert parse_event(raw(name)) == GOLDEN[name]
    assert parse_event(raw(name).encode()) == GOLDEN[name]


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_datetimes_are_aware_utc(name: str) -> None:
    signal = parse_event(raw(name))
    stamps = [signal.time, getattr(signal, "start_time", None)]
    for stamp in stamps:
        assert stamp is None or (stamp.tzinfo is UTC and stamp.utcoffset() is not None)


def test_every_example_file_has_a_golden_test() -> None:
    root = EVENTS_DIR
    found = {p.relative_to(root).as_posix() for p in root.rglob("*.json")}
    assert found == set(GOLDEN)
    assert (root / FARGATE_SNIPPET).is_file()


def test_fargate_spot_snippet_is_not_json() -> None:
    assert malformed(raw(FARGATE_SNIPPET)).reason == "not_json"


def test_fargate_spot_snippet_without_ellipsis() -> None:
    text = raw(FARGATE_SNIPPET)
    assert text.count(",\n    ...") == 1
    signal = parse_event(text.replace(",\n    ...", ""))
    assert signal == TaskStateChange(
        event_id="d4ac5cdb-b2b5-440b-bf17-40856788a894",
        time=None,  # the snippet has no "time"
        cluster_arn=f"{ECS_EUW1}:cluster/batch",
        task_arn=f"{ECS_EUW1}:task/1c7e5a90-3d4b-4f62-8e15-6a2b9cEXAMPLE",
        last_status="RUNNING",
        desired_status="STOPPED",
        stop_code="TerminationNotice",
        group=None,
        container_instance_arn=None,
        version=None,
    )


def test_examples_keep_the_odd_details_the_parser_must_survive() -> None:
    """The fixtures are written for the project but keep the quirks of published examples."""
    spot, rebalance, health = payload(SPOT), payload(REBALANCE), payload(HEALTH)
    assert spot["account"] == "<account_number>"
    for data in (spot, rebalance):  # an AZ where the region belongs, and no account
        assert data["resources"] == [f"arn:aws:ec2:eu-west-1c:instance/{SPOT_ID}"]
    assert health["account"] == "account id"
    assert health["detail"]["eventArn"] == "arn:aws:health:region::event/id"
    assert health["resources"] == [HEALTH_ID]  # a bare id, not an ARN
    assert health["detail"]["startTime"] == "Tue, 21 Apr 2026 04:30:00 GMT"  # RFC 1123
    assert "version" not in payload(DOC_STATE)
    for name in (DOC_SPOT, DOC_REBALANCE):
        assert payload(name)["time"] == "yyyy-mm-ddThh:mm:ssZ"
    assert payload(DOC_SPOT)["detail"]["instance-action"] == "action"


def test_signals_are_frozen() -> None:
    signal = parse_event(raw(SPOT))
    with pytest.raises(FrozenInstanceError):
        signal.event_id = "other"  # type: ignore[misc]


def test_signal_kinds_lists_every_kind_once() -> None:
    kinds = {cls.KIND for cls in Signal.__subclasses__()}
    assert len(SIGNAL_KINDS) == len(set(SIGNAL_KINDS)) == len(kinds) == 9
    assert set(SIGNAL_KINDS) == kinds


# --- envelope time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-10-26T14:14:14Z", utc(2020, 10, 26, 14, 14, 14)),
        ("2020-10-26T16:14:14+02:00", utc(2020, 10, 26, 14, 14, 14)),
        ("2020-10-26T14:14:14", utc(2020, 10, 26, 14, 14, 14)),
        ("2020-10-26T14:14:14.5Z", datetime(2020, 10, 26, 14, 14, 14, 500000, tzinfo=UTC)),
        ("yyyy-mm-ddThh:mm:ssZ", None),
        ("", None),
        ("0001-01-01T00:00:00+01:00", None),
        (1603721654, None),
        (None, None),
    ],
)
def test_envelope_time(value: Any, expected: datetime | None) -> None:
    data = payload(SPOT)
    data["time"] = value
    signal = parse_event(json.dumps(data))
    assert signal.time == expected
    assert signal.time is None or signal.time.tzinfo is UTC


def test_envelope_time_absent() -> None:
    data = payload(SPOT)
    del data["time"]
    assert parse_event(json.dumps(data)).time is None


# --- malformed bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "{",
        "not json",
        "{'single': 'quotes'}",
        b"\xff\xfe\x00garbage",
        b'{"id": "\xff"}',
        "[" * 100_000,
        "1" * 5_000,
    ],
)
def test_not_json(body: str | bytes) -> None:
    assert malformed(body).reason == "not_json"


@pytest.mark.parametrize("name", list(GOLDEN))
def test_truncated_payload_is_not_json(name: str) -> None:
    text = raw(name)
    for cut in (1, len(text) // 2, len(text) - 3):
        assert malformed(text[:cut]).reason == "not_json"


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "42", "true", "3.5"])
def test_not_object(body: str) -> None:
    assert malformed(body).reason == "not_object"


def test_payload_inside_a_list_is_not_object() -> None:
    assert reason_for([payload(SPOT)]) == "not_object"


@pytest.mark.parametrize("name", list(GOLDEN))
@pytest.mark.parametrize("field", ["id", "source", "detail-type", "detail"])
def test_missing_envelope_field(name: str, field: str) -> None:
    data = payload(name)
    del data[field]
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_envelope"
    assert field in str(exc)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", 42),
        ("id", ""),
        ("id", None),
        ("source", None),
        ("source", ["aws.ec2"]),
        ("detail-type", 5),
        ("detail", "instance-id"),
        ("detail", None),
        ("detail", []),
        ("resources", "arn:aws:ec2:us-east-1:1:instance/i-1"),
        ("resources", [1]),
        ("version", 0),
        ("account", 123456789012),
        ("region", {}),
    ],
)
def test_wrongly_typed_envelope_field(field: str, value: Any) -> None:
    data = payload(SPOT)
    data[field] = value
    assert reason_for(data) == "invalid_envelope"


@pytest.mark.parametrize("name", EC2_FILES)
def test_missing_ec2_instance_id(name: str) -> None:
    data = payload(name)
    del data["detail"]["instance-id"]
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_detail"
    assert "instance-id" in str(exc)


@pytest.mark.parametrize("name", EC2_FILES)
@pytest.mark.parametrize("value", [123, None, "", [SPOT_ID], {"id": "i-1"}, True])
def test_wrongly_typed_ec2_instance_id(name: str, value: Any) -> None:
    data = payload(name)
    data["detail"]["instance-id"] = value
    assert reason_for(data) == "invalid_detail"


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        (SPOT, "instance-action", None),
        (SPOT, "instance-action", 1),
        (STATE, "state", None),
        (LIFECYCLE, "EC2InstanceId", None),
        (LIFECYCLE, "EC2InstanceId", 7),
        (LIFECYCLE, "LifecycleActionToken", None),
        (LIFECYCLE, "AutoScalingGroupName", ""),
        (LIFECYCLE, "LifecycleHookName", None),
        (LIFECYCLE, "LifecycleTransition", None),
        (HEALTH, "service", None),
        (HEALTH, "eventTypeCategory", 3),
        (HEALTH, "eventTypeCode", None),
        (HEALTH, "affectedEntities", HEALTH_ID),
        (HEALTH, "affectedEntities", [HEALTH_ID]),
        (CONTAINER_INSTANCE, "version", "27"),
        (CONTAINER_INSTANCE, "version", 27.0),
        (CONTAINER_INSTANCE, "version", True),
        (CONTAINER_INSTANCE, "version", None),
        (CONTAINER_INSTANCE, "ec2InstanceId", None),
        (CONTAINER_INSTANCE, "ec2InstanceId", ""),
        (CONTAINER_INSTANCE, "clusterArn", None),
        (CONTAINER_INSTANCE, "containerInstanceArn", 1),
        (CONTAINER_INSTANCE, "status", None),
        (TASK, "version", "3"),
        (TASK, "taskArn", None),
        (TASK, "clusterArn", None),
        (TASK, "lastStatus", None),
        (TASK, "desiredStatus", 0),
        (TASK, "stopCode", 1),
        (TASK, "containerInstanceArn", []),
        (PLACEMENT, "eventName", None),
        (PLACEMENT, "clusterArn", None),
        (PLACEMENT, "reason", 5),
    ],
)
def test_bad_detail_field(name: str, field: str, value: Any) -> None:
    """A wrongly typed or missing (``None``: removed) detail field we read."""
    data = payload(name)
    if value is None:
        del data["detail"][field]
    else:
        data["detail"][field] = value
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_detail", str(exc)
    assert field in str(exc)


def test_error_message_is_short_and_omits_values() -> None:
    data = payload(SPOT)
    data["detail"]["instance-id"] = "SECRET-" * 1000
    data["detail"]["instance-action"] = ["SECRET"]
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_detail"
    assert "SECRET" not in str(exc)
    assert "instance-action" in str(exc)
    assert len(str(exc)) <= 200


def _pad_to(data: dict[str, Any], size: int) -> str:
    body = json.dumps(data)
    data["padding"] = "x" * (size - len(body.encode()) - len(', "padding": ""'))
    body = json.dumps(data)
    assert len(body.encode()) == size
    return body


def test_body_at_the_limit_parses() -> None:
    body = _pad_to(payload(SPOT), MAX_BODY_BYTES)
    assert parse_event(body) == GOLDEN[SPOT]
    assert parse_event(body.encode()) == GOLDEN[SPOT]


def test_body_over_the_limit_is_too_large() -> None:
    body = _pad_to(payload(SPOT), MAX_BODY_BYTES + 1)
    assert malformed(body).reason == "too_large"
    assert malformed(body.encode()).reason == "too_large"
    assert malformed("x" * 10 * MAX_BODY_BYTES).reason == "too_large"


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    data = payload(SPOT)
    data["padding"] = "é" * (MAX_BODY_BYTES // 2)
    body = json.dumps(data, ensure_ascii=False)
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    assert malformed(body).reason == "too_large"


# --- ignored and edge cases of recognised events -----------------------------------------


def test_unknown_detail_type_is_ignored() -> None:
    data = payload(SPOT)
    data["detail-type"] = "EC2 Fleet Spot Instance Request Change"
    assert parse_event(json.dumps(data)) == Ignored(
        event_id="336b1da8-ffda-4d54-ae3b-9a7b5b7bf6a6",
        time=utc(2026, 3, 14, 9, 26, 53),
        source="aws.ec2",
        detail_type="EC2 Fleet Spot Instance Request Change",
    )


def test_unknown_source_is_ignored() -> None:
    data = payload(SPOT)
    data["source"] = "my.application"
    data["detail"] = {}
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, Ignored)
    assert (signal.source, signal.detail_type) == ("my.application", data["detail-type"])


def test_unknown_event_with_empty_detail_is_ignored() -> None:
    body = {"id": "x", "source": "aws.s3", "detail-type": "Object Created", "detail": {}}
    assert parse_event(json.dumps(body)) == Ignored(
        event_id="x", time=None, source="aws.s3", detail_type="Object Created"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"service": "RDS"},
        {"service": "RDS", "eventTypeCode": None},
        {"eventTypeCategory": "issue"},
        {"eventTypeCategory": "accountNotification"},
        {"service": "ec2"},
    ],
)
def test_other_health_events_are_ignored(change: dict[str, Any]) -> None:
    data = payload(HEALTH)
    for key, value in change.items():
        if value is None:
            del data["detail"][key]
        else:
            data["detail"][key] = value
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, Ignored)
    assert (signal.source, signal.detail_type) == ("aws.health", "AWS Health Event")
    assert instance_ids(signal) == ()


@pytest.mark.parametrize(
    ("entities", "resources", "expected"),
    [
        (
            [{"entityValue": "i-1"}, {"entityValue": "i-2"}, {"entityValue": "i-1"}],
            [],
            ("i-1", "i-2"),
        ),
        ([{"entityValue": "h-0123"}, {"tags": {}}, {"entityValue": "i-9"}], ["i-1"], ("i-9",)),
        ([], ["arn:aws:ec2:us-east-1:1:instance/i-abc", "i-def", "vol-1"], ("i-abc", "i-def")),
        ([{"entityValue": "h-0123"}], ["arn:aws:ec2:us-east-1:1:dedicated-host/h-0123"], ()),
        ([{"entityValue": "i-"}], [], ()),
    ],
)
def test_scheduled_change_instance_ids(
    entities: list[Any], resources: list[str], expected: tuple[str, ...]
) -> None:
    data = payload(HEALTH)
    data["detail"]["affectedEntities"] = entities
    data["resources"] = resources
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, ScheduledChange)
    assert signal.instance_ids == instance_ids(signal) == expected


def test_scheduled_change_reads_the_end_of_its_window() -> None:
    data = payload(HEALTH)
    assert isinstance(signal := parse_event(json.dumps(data)), ScheduledChange)
    assert signal.end_time is None
    data["detail"]["endTime"] = "Tue, 21 Apr 2026 06:30:00 GMT"
    assert isinstance(signal := parse_event(json.dumps(data)), ScheduledChange)
    assert signal.end_time == utc(2026, 4, 21, 6, 30, 0)


def test_scheduled_change_without_entities_uses_resources() -> None:
    data = payload(HEALTH)
    del data["detail"]["affectedEntities"]
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, ScheduledChange)
    assert signal.instance_ids == (HEALTH_ID,)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sat, 05 Jun 2016 15:10:09 GMT", utc(2016, 6, 5, 15, 10, 9)),
        ("Sat, 05 Jun 2016 17:10:09 +0200", utc(2016, 6, 5, 15, 10, 9)),
        ("Sat, 05 Jun 2016 15:10:09 -0000", utc(2016, 6, 5, 15, 10, 9)),
        ("2016-06-05T15:10:09Z", utc(2016, 6, 5, 15, 10, 9)),
        ("next tuesday", None),
        ("", None),
        (1465139409, None),
        (None, None),
    ],
)
def test_health_start_time(value: Any, expected: datetime | None) -> None:
    data = payload(HEALTH)
    data["detail"]["startTime"] = value
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, ScheduledChange)
    assert signal.start_time == expected
    assert signal.start_time is None or signal.start_time.tzinfo is UTC


def test_lifecycle_with_origin_and_destination() -> None:
    data = payload(LIFECYCLE)
    data["detail"] |= {
        "Origin": "AutoScalingGroup",
        "Destination": "EC2",
        "NotificationMetadata": 1,
    }
    assert parse_event(json.dumps(data)) == GOLDEN[LIFECYCLE]


@pytest.mark.parametrize(
    "transition", ["autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATED", ""]
)
def test_lifecycle_other_transition_is_ignored(transition: str) -> None:
    data = payload(LIFECYCLE)
    data["detail"] = {"LifecycleTransition": transition}
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, Ignored)
    assert signal.detail_type == "EC2 Instance-terminate Lifecycle Action"


def test_launch_lifecycle_action_is_ignored() -> None:
    data = payload(LIFECYCLE)
    data["detail-type"] = "EC2 Instance-launch Lifecycle Action"
    data["detail"]["LifecycleTransition"] = "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert isinstance(parse_event(json.dumps(data)), Ignored)


@pytest.mark.parametrize("event_name", ["SERVICE_STEADY_STATE", "TASKSET_STEADY_STATE", ""])
def test_other_service_actions_are_ignored(event_name: str) -> None:
    data = payload(PLACEMENT)
    data["detail"] = {"eventName": event_name}
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, Ignored)
    assert (signal.source, signal.detail_type) == ("aws.ecs", "ECS Service Action")


def test_placement_failure_without_service_resource() -> None:
    data = payload(PLACEMENT)
    data["resources"] = [f"{ECS_EUC1}:cluster/spot-workers"]
    del data["detail"]["reason"]
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, ServicePlacementFailure)
    assert (signal.service_arn, signal.reason) == ("", None)


TEST_NOTIFICATION = {
    "AccountId": "123456789012",
    "RequestId": "4ee29a26-ba80-11e5-a4ab-9b3b5a2b5d1b",
    "AutoScalingGroupARN": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x",
    "AutoScalingGroupName": "my-asg",
    "Service": "AWS Auto Scaling",
    "Event": "autoscaling:TEST_NOTIFICATION",
    "Time": "2016-01-14T14:07:38.456Z",
}


def test_autoscaling_test_notification_is_ignored() -> None:
    assert parse_event(json.dumps(TEST_NOTIFICATION)) == Ignored(
        event_id="4ee29a26-ba80-11e5-a4ab-9b3b5a2b5d1b",
        time=datetime(2016, 1, 14, 14, 7, 38, 456000, tzinfo=UTC),
        source="aws.autoscaling",
        detail_type="autoscaling:TEST_NOTIFICATION",
    )


def test_autoscaling_test_notification_without_request_id() -> None:
    signal = parse_event(json.dumps({"Event": "autoscaling:TEST_NOTIFICATION", "RequestId": 5}))
    assert signal == Ignored(
        event_id="",
        time=None,
        source="aws.autoscaling",
        detail_type="autoscaling:TEST_NOTIFICATION",
    )


# --- lifecycle notifications sent by Auto Scaling straight to SQS ------------------------

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
DIRECT_REQUIRED = [
    "LifecycleHookName",
    "AutoScalingGroupName",
    "EC2InstanceId",
    "LifecycleActionToken",
]

# The flat JSON body a terminate hook whose NotificationTargetARN is the queue sends (same keys
# as real captures, e.g. with Origin/Destination; AWS's user guide lists the same field names).
DIRECT_TERMINATE: dict[str, Any] = {
    "Origin": "AutoScalingGroup",
    "LifecycleHookName": "my-lifecycle-hook",
    "Destination": "EC2",
    "AccountId": "123456789012",
    "RequestId": "4e6156f4-a9e2-d6c6-de6c-f6f4e8d6c4a3",
    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
    "AutoScalingGroupName": "my-asg",
    "Service": "AWS Auto Scaling",
    "Time": "2021-01-19T00:36:26.533Z",
    "EC2InstanceId": "i-0598c7d356eba48d7",
    "LifecycleActionToken": "2f95d5e1-9b0f-4a9e-9a3e-3a4e2b4c7c8d",
}

# AWS's "Notification message example for Amazon SNS and Amazon SQS" (EC2 Auto Scaling user
# guide, "Prepare to add a lifecycle hook"), which the guide prints as "Key: value" lines.
AWS_DOC_DIRECT_LAUNCH: dict[str, Any] = {
    "Service": "AWS Auto Scaling",
    "Time": "2021-01-19T00:36:26.533Z",
    "RequestId": "18b2ec17-3e9b-4c15-8024-ff2e8ce8786a",
    "LifecycleActionToken": "71514b9d-6a40-4b26-8523-05e7ee35fa40",
    "AccountId": "123456789012",
    "AutoScalingGroupName": "my-asg",
    "LifecycleHookName": "my-hook",
    "EC2InstanceId": "i-0598c7d356eba48d7",
    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
    "NotificationMetadata": "hook message metadata",
}


def direct(**changes: Any) -> dict[str, Any]:
    """A copy of :data:`DIRECT_TERMINATE`; a change to ``None`` removes that key."""
    data = dict(DIRECT_TERMINATE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_direct_terminate_golden() -> None:
    body = json.dumps(DIRECT_TERMINATE)
    signal = parse_event(body)
    assert isinstance(signal, LifecycleTerminate)
    assert signal.KIND == "lifecycle_terminate"
    assert signal.event_id == "4e6156f4-a9e2-d6c6-de6c-f6f4e8d6c4a3"
    assert signal.time == datetime(2021, 1, 19, 0, 36, 26, 533000, tzinfo=UTC)
    assert signal.time is not None and signal.time.tzinfo is UTC
    assert signal.instance_id == "i-0598c7d356eba48d7"
    assert signal.group_name == "my-asg"
    assert signal.hook_name == "my-lifecycle-hook"
    assert signal.token == "2f95d5e1-9b0f-4a9e-9a3e-3a4e2b4c7c8d"
    assert signal.transition == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert signal == LifecycleTerminate(
        event_id="4e6156f4-a9e2-d6c6-de6c-f6f4e8d6c4a3",
        time=datetime(2021, 1, 19, 0, 36, 26, 533000, tzinfo=UTC),
        instance_id="i-0598c7d356eba48d7",
        group_name="my-asg",
        hook_name="my-lifecycle-hook",
        token="2f95d5e1-9b0f-4a9e-9a3e-3a4e2b4c7c8d",
        transition="autoscaling:EC2_INSTANCE_TERMINATING",
    )
    assert parse_event(body.encode()) == signal
    assert instance_ids(signal) == ("i-0598c7d356eba48d7",)


def test_direct_terminate_matches_the_eventbridge_form() -> None:
    """The same action via EventBridge gives the same signal apart from event_id and time."""
    envelope = payload(LIFECYCLE)
    flat = {key: envelope["detail"][key] for key in [*DIRECT_REQUIRED, "LifecycleTransition"]}
    expected = GOLDEN[LIFECYCLE]
    assert isinstance(expected, LifecycleTerminate)
    signal = parse_event(json.dumps(flat))
    assert signal == LifecycleTerminate(
        event_id=expected.token,
        time=None,
        instance_id=expected.instance_id,
        group_name=expected.group_name,
        hook_name=expected.hook_name,
        token=expected.token,
        transition=expected.transition,
    )


def test_aws_doc_direct_launch_example_is_ignored() -> None:
    assert parse_event(json.dumps(AWS_DOC_DIRECT_LAUNCH)) == Ignored(
        event_id="18b2ec17-3e9b-4c15-8024-ff2e8ce8786a",
        time=datetime(2021, 1, 19, 0, 36, 26, 533000, tzinfo=UTC),
        source="aws.autoscaling",
        detail_type=LAUNCHING,
    )


def test_direct_launch_is_ignored() -> None:
    signal = parse_event(json.dumps(direct(LifecycleTransition=LAUNCHING)))
    assert signal == Ignored(
        event_id="4e6156f4-a9e2-d6c6-de6c-f6f4e8d6c4a3",
        time=datetime(2021, 1, 19, 0, 36, 26, 533000, tzinfo=UTC),
        source="aws.autoscaling",
        detail_type=LAUNCHING,
    )
    assert instance_ids(signal) == ()


def test_direct_launch_needs_no_other_field() -> None:
    """As with EventBridge launch events, we do not check the fields of a launch we ignore."""
    assert parse_event(json.dumps({"LifecycleTransition": LAUNCHING})) == Ignored(
        event_id="", time=None, source="aws.autoscaling", detail_type=LAUNCHING
    )
    no_request_id = direct(LifecycleTransition=LAUNCHING, RequestId=None, EC2InstanceId=7)
    signal = parse_event(json.dumps(no_request_id))
    assert signal.event_id == DIRECT_TERMINATE["LifecycleActionToken"]


@pytest.mark.parametrize("transition", ["autoscaling:EC2_INSTANCE_TERMINATED", ""])
def test_direct_other_transition_is_ignored(transition: str) -> None:
    signal = parse_event(json.dumps(direct(LifecycleTransition=transition)))
    assert isinstance(signal, Ignored)
    assert (signal.source, signal.detail_type) == ("aws.autoscaling", transition)


@pytest.mark.parametrize("field", DIRECT_REQUIRED)
def test_direct_terminate_missing_field(field: str) -> None:
    exc = malformed(json.dumps(direct(**{field: None})))
    assert exc.reason == "invalid_detail"
    assert field in str(exc)


@pytest.mark.parametrize("field", DIRECT_REQUIRED)
@pytest.mark.parametrize("value", ["", 7, True, 1.5, [], ["i-0598c7d356eba48d7"], {"id": "x"}])
def test_direct_terminate_wrongly_typed_field(field: str, value: Any) -> None:
    exc = malformed(json.dumps(direct(**{field: value})))
    assert exc.reason == "invalid_detail"
    assert field in str(exc)


def test_direct_terminate_json_null_field() -> None:
    data = direct()
    data["EC2InstanceId"] = None
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_detail"
    assert "EC2InstanceId" in str(exc)


@pytest.mark.parametrize("value", [None, 5, True, [TERMINATING], {"x": TERMINATING}])
def test_direct_wrongly_typed_transition(value: Any) -> None:
    data = direct()
    data["LifecycleTransition"] = value
    exc = malformed(json.dumps(data))
    assert exc.reason == "invalid_detail"
    assert "LifecycleTransition" in str(exc)


def test_direct_terminate_error_message_is_short_and_omits_values() -> None:
    exc = malformed(json.dumps(direct(EC2InstanceId=["SECRET-" * 1000], RequestId="SECRET")))
    assert exc.reason == "invalid_detail"
    assert "SECRET" not in str(exc)
    assert "EC2InstanceId" in str(exc)
    assert len(str(exc)) <= 200


@pytest.mark.parametrize("request_id", [None, "", 42, ["x"]])
def test_direct_terminate_without_request_id_uses_the_token(request_id: Any) -> None:
    data = direct(RequestId=None)
    if request_id is not None:
        data["RequestId"] = request_id
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, LifecycleTerminate)
    assert signal.event_id == signal.token == DIRECT_TERMINATE["LifecycleActionToken"]


def test_direct_terminate_duplicates_share_an_event_id() -> None:
    """Two copies of one lifecycle action without RequestId, delivered at different times."""
    first = parse_event(json.dumps(direct(RequestId=None)))
    second = parse_event(json.dumps(direct(RequestId=None, Time="2021-01-19T00:41:26.533Z")))
    other = parse_event(json.dumps(direct(RequestId=None, LifecycleActionToken="other-token")))
    assert first.event_id == second.event_id == "2f95d5e1-9b0f-4a9e-9a3e-3a4e2b4c7c8d"
    assert first.time != second.time
    assert other.event_id == "other-token" != first.event_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-01-19T02:36:26.533+02:00", datetime(2021, 1, 19, 0, 36, 26, 533000, tzinfo=UTC)),
        ("yyyy-mm-ddThh:mm:ssZ", None),
        ("", None),
        (1611016586, None),
        (None, None),
    ],
)
def test_direct_terminate_time(value: Any, expected: datetime | None) -> None:
    data = direct(Time=None)
    if value is not None:
        data["Time"] = value
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, LifecycleTerminate)
    assert signal.time == expected
    assert signal.time is None or signal.time.tzinfo is UTC


def test_direct_terminate_extra_fields_are_ignored() -> None:
    data = direct(NotificationMetadata='{"drain": true}', Unexpected={"nested": [1]})
    assert parse_event(json.dumps(data)) == parse_event(json.dumps(DIRECT_TERMINATE))


@pytest.mark.parametrize(
    "body",
    [
        direct(LifecycleTransition=None),
        {"lifecycleTransition": TERMINATING, "EC2InstanceId": "i-0598c7d356eba48d7"},
        {"detail": DIRECT_TERMINATE},
        {"Event": "autoscaling:EC2_INSTANCE_TERMINATE", "EC2InstanceId": "i-1"},
        {},
    ],
)
def test_neither_envelope_nor_direct_notification_is_invalid_envelope(
    body: dict[str, Any],
) -> None:
    assert reason_for(body) == "invalid_envelope"


def test_test_notification_wins_over_a_lifecycle_transition() -> None:
    data = dict(TEST_NOTIFICATION, LifecycleTransition=TERMINATING)
    signal = parse_event(json.dumps(data))
    assert isinstance(signal, Ignored)
    assert signal.detail_type == "autoscaling:TEST_NOTIFICATION"


def test_extra_fields_are_ignored_everywhere() -> None:
    for name in GOLDEN:
        data = payload(name)
        data["unexpected"] = {"nested": [1, 2]}
        data["detail"]["unexpected"] = None
        assert parse_event(json.dumps(data)) == GOLDEN[name]


# --- instance_ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (SPOT, (SPOT_ID,)),
        (REBALANCE, (SPOT_ID,)),
        (STATE, ("i-0b9e411b13298ef28",)),
        (LIFECYCLE, ("i-06f8568685282463f",)),
        (HEALTH, (HEALTH_ID,)),
        (CONTAINER_INSTANCE, ("i-7c3d91e2",)),
        (TASK, ()),
        (PLACEMENT, ()),
        (DOC_SPOT, (DOC_EC2_ID,)),
        (DOC_REBALANCE, (DOC_EC2_ID,)),
        (DOC_STATE, ("i-0cb8d562497a3d450",)),
    ],
)
def test_instance_ids(name: str, expected: tuple[str, ...]) -> None:
    assert instance_ids(parse_event(raw(name))) == expected


def test_instance_ids_of_ignored_is_empty() -> None:
    assert instance_ids(parse_event(json.dumps(TEST_NOTIFICATION))) == ()
    assert instance_ids(Ignored(event_id="e", time=None, source="s", detail_type="d")) == ()


# --- properties --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
SOURCES = st.sampled_from(["aws.ec2", "aws.autoscaling", "aws.health", "aws.ecs", "x"])
DETAIL_TYPES = st.sampled_from(
    [
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "EC2 Instance-terminate Lifecycle Action",
        "AWS Health Event",
        "ECS Container Instance State Change",
        "ECS Task State Change",
        "ECS Service Action",
    ]
)
DETAIL_KEYS = st.sampled_from(
    [
        "instance-id",
        "instance-action",
        "state",
        "LifecycleTransition",
        "EC2InstanceId",
        "LifecycleActionToken",
        "AutoScalingGroupName",
        "LifecycleHookName",
        "service",
        "eventTypeCategory",
        "eventTypeCode",
        "startTime",
        "affectedEntities",
        "clusterArn",
        "containerInstanceArn",
        "ec2InstanceId",
        "status",
        "version",
        "taskArn",
        "lastStatus",
        "desiredStatus",
        "stopCode",
        "eventName",
    ]
)
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=4) | JSON_VALUES,
        "source": SOURCES | JSON_VALUES,
        "detail-type": DETAIL_TYPES | JSON_VALUES,
        "detail": st.dictionaries(DETAIL_KEYS, st.text(max_size=4) | JSON_VALUES) | JSON_VALUES,
        "time": st.text(max_size=25) | JSON_VALUES,
        "resources": st.lists(st.text(max_size=6)) | JSON_VALUES,
        "Event": st.just("autoscaling:TEST_NOTIFICATION") | JSON_VALUES,
    },
)
DIRECT_NOTIFICATIONS = st.fixed_dictionaries(
    {"LifecycleTransition": st.sampled_from([TERMINATING, LAUNCHING, ""]) | JSON_VALUES},
    optional={
        key: st.text(max_size=4) | JSON_VALUES
        for key in [*DIRECT_REQUIRED, "RequestId", "Time", "Origin", "Destination"]
    },
)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(st.text() | st.binary())
def test_arbitrary_text_or_bytes(body: str | bytes) -> None:
    assert_signal_or_malformed(body)


@PROPERTY_SETTINGS
@given(JSON_VALUES)
def test_arbitrary_json(value: Any) -> None:
    assert_signal_or_malformed(json.dumps(value))


@PROPERTY_SETTINGS
@given(ENVELOPES)
def test_arbitrary_envelope_shaped_json(value: dict[str, Any]) -> None:
    assert_signal_or_malformed(json.dumps(value))


@PROPERTY_SETTINGS
@given(name=st.sampled_from(list(GOLDEN)), data=st.data())
def test_mutating_a_top_level_field(name: str, data: st.DataObject) -> None:
    body = payload(name)
    key = data.draw(st.sampled_from(sorted(body)) | st.text(max_size=8), label="key")
    body[key] = data.draw(JSON_VALUES, label="value")
    assert_signal_or_malformed(json.dumps(body))


@PROPERTY_SETTINGS
@given(name=st.sampled_from(list(GOLDEN)), data=st.data())
def test_mutating_a_detail_field(name: str, data: st.DataObject) -> None:
    body = payload(name)
    key = data.draw(st.sampled_from(sorted(body["detail"])) | DETAIL_KEYS, label="key")
    body["detail"][key] = data.draw(JSON_VALUES, label="value")
    assert_signal_or_malformed(json.dumps(body))


@PROPERTY_SETTINGS
@given(DIRECT_NOTIFICATIONS)
def test_arbitrary_direct_notification(value: dict[str, Any]) -> None:
    assert_signal_or_malformed(json.dumps(value))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutating_a_direct_notification_field(data: st.DataObject) -> None:
    body = direct()
    key = data.draw(st.sampled_from(sorted(body)) | st.text(max_size=8), label="key")
    body[key] = data.draw(JSON_VALUES, label="value")
    assert_signal_or_malformed(json.dumps(body))


@PROPERTY_SETTINGS
@given(request_id=JSON_VALUES, token=st.text(min_size=1, max_size=40))
def test_direct_terminate_event_id(request_id: Any, token: str) -> None:
    signal = parse_event(json.dumps(direct(RequestId=request_id, LifecycleActionToken=token)))
    assert isinstance(signal, LifecycleTerminate)
    has_request_id = isinstance(request_id, str) and request_id != ""
    assert signal.event_id == (request_id if has_request_id else token)
    assert signal.token == token
