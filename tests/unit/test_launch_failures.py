"""Which scaling activities say a group could not launch (as DescribeScalingActivities
answers, newest first)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scaler.aws.activities import SKEW, failed_launch

ASKED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()
DRY = (
    "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
    "available that matches your request. Launching EC2 instance failed."
)


def _activity(status: str, seconds_after_ask: float, what: str = "Launching") -> dict[str, Any]:
    start = datetime.fromtimestamp(ASKED + seconds_after_ask, UTC)
    description = (
        f"{what} a new EC2 instance.  Status Reason: {DRY}"
        if what == "Launching"
        else f"{what} EC2 instance: i-0123456789abcdef0"
    )
    return {
        "ActivityId": "0a1b2c3d-0000-4000-8000-000000000001",
        "AutoScalingGroupName": "spot-a",
        "Description": description,
        "StartTime": start,
        "StatusCode": status,
        "StatusMessage": DRY if status == "Failed" else "",
        "Progress": 100,
    }


def test_a_launch_failed_since_the_ask_says_why() -> None:
    assert failed_launch([_activity("Failed", 5)], ASKED) == DRY


def test_successful_and_running_launches_are_no_failure() -> None:
    for status in ("Successful", "InProgress", "PreInService", "WaitingForSpotInstanceId"):
        assert failed_launch([_activity(status, 5)], ASKED) is None


def test_a_failure_from_before_the_ask_is_old_news() -> None:
    assert failed_launch([_activity("Failed", -SKEW - 60)], ASKED) is None
    assert failed_launch([_activity("Failed", -SKEW / 2)], ASKED) == DRY  # clocks differ


def test_a_failed_termination_is_no_launch_failure() -> None:
    assert failed_launch([_activity("Failed", 5, what="Terminating")], ASKED) is None


def test_the_newest_failure_is_found_among_successes() -> None:
    history = [_activity("Successful", 20), _activity("Failed", 10), _activity("Failed", -600)]
    assert failed_launch(history, ASKED) == DRY


def test_a_failure_without_a_message_is_named_by_its_description() -> None:
    activity = {**_activity("Cancelled", 5), "StatusMessage": ""}
    assert failed_launch([activity], ASKED) == activity["Description"]
