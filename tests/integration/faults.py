"""Make chosen AWS calls fail, through botocore's own event hooks (no mocks of our code).

A ``before-call`` handler that returns a response short-circuits the HTTP request: the client
then raises the error exactly as if AWS had answered it, after validating the request against
the service model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from scaler import testbed

# The calls that change something, of every service the scaler writes to.
MUTATING = frozenset(
    {
        "CompleteLifecycleAction",
        "CreateFleet",
        "CreateTags",
        "DeleteTags",
        "DeregisterContainerInstance",
        "ModifySpotFleetRequest",
        "RecordLifecycleActionHeartbeat",
        "RunTask",
        "SetDesiredCapacity",
        "StopTask",
        "TagResource",
        "TerminateInstanceInAutoScalingGroup",
        "TerminateInstances",
        "UntagResource",
        "UpdateContainerInstancesState",
        "UpdateService",
    }
)


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FailFirst:
    """Fail the first ``times`` calls of ``operation`` with ``code`` (after the first
    ``skip``)."""

    service: str
    operation: str
    times: int
    code: str = "ThrottlingException"
    message: str = "Rate exceeded"
    status: int = 400
    failed: int = 0
    skip: int = 0

    def __call__(self, service: str, client: Any) -> None:
        if service == self.service:
            client.meta.events.register(f"before-call.*.{self.operation}", self._maybe_fail)

    def _maybe_fail(self, **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        if self.skip > 0:
            self.skip -= 1
            return None
        if self.failed >= self.times:
            return None
        self.failed += 1
        error = {"Error": {"Code": self.code, "Message": self.message}}
        return _Response(self.status), {
            **error,
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }


@dataclass
class Capture:
    """Record the validated, serialized requests of ``operation`` and answer them with ``reply``."""

    service: str
    operation: str
    reply: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, service: str, client: Any) -> None:
        if service == self.service:
            client.meta.events.register(f"before-call.*.{self.operation}", self._capture)

    def _capture(self, params: dict[str, Any], **_: Any) -> tuple[_Response, dict[str, Any]]:
        self.requests.append(params)
        return _Response(200), {**self.reply, "ResponseMetadata": {"HTTPStatusCode": 200}}


@dataclass
class Mutations:
    """Record every call of ``operations`` (default: :data:`MUTATING`) about to reach AWS, in
    order; ``on_first`` runs when the first one is made (to change the world mid-cycle)."""

    on_first: Callable[[], None] = lambda: None
    operations: frozenset[str] = MUTATING
    calls: list[str] = field(default_factory=list)

    def __call__(self, service: str, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        if model.name not in self.operations:
            return
        self.calls.append(model.name)
        if len(self.calls) == 1:
            self.on_first()


def form(params: dict[str, Any]) -> dict[str, str]:
    """The query-protocol fields of a request at botocore's ``before-call`` hook."""
    body = params.get("body", {})
    if isinstance(body, dict):
        return {str(k): str(v) for k, v in body.items()}
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text).items()}


MIN_SIZE_MESSAGE = (
    "Currently, desiredSize equals minSize ({min}). Terminating instance without replacement will "
    "violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to "
    "false or lower group's min size."
)


@dataclass
class MinSizeRefusal:
    """Refuse, as AWS does, a ``TerminateInstanceInAutoScalingGroup`` that would decrement a
    group's desired capacity below its MinSize (moto decrements it anyway)."""

    aws: testbed.LocalAws
    refused: int = 0

    def __call__(self, service: str, client: Any) -> None:
        if service == "autoscaling":
            client.meta.events.register(
                "before-call.*.TerminateInstanceInAutoScalingGroup", self._check
            )

    def _check(self, params: dict[str, Any], **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        fields = form(params)
        if fields.get("ShouldDecrementDesiredCapacity", "").lower() != "true":
            return None
        asg = self.aws.client("autoscaling")
        found = asg.describe_auto_scaling_instances(InstanceIds=[fields["InstanceId"]])
        if not found["AutoScalingInstances"]:
            return None
        name = found["AutoScalingInstances"][0]["AutoScalingGroupName"]
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        desired = group["AutoScalingGroups"][0]["DesiredCapacity"]
        minimum = group["AutoScalingGroups"][0]["MinSize"]
        if desired - 1 >= minimum:
            return None
        self.refused += 1
        error = {"Code": "ValidationError", "Message": MIN_SIZE_MESSAGE.format(min=minimum)}
        return _Response(400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}


def chain(*instruments: Callable[[str, Any], None] | None) -> Callable[[str, Any], None]:
    """One instrument installing each of ``instruments`` (None left out) on every client."""

    def install(service: str, client: Any) -> None:
        for instrument in instruments:
            if instrument is not None:
                instrument(service, client)

    return install


@dataclass
class LaggingDescribe:
    """EC2's eventual consistency after ``CreateFleet``: the instances a fleet launched stay out
    of ``DescribeInstances`` answers for the next ``calls`` calls (moto shows them at once)."""

    calls: int
    hidden: dict[str, int] = field(default_factory=dict)  # instance id -> answers still to miss
    launched: list[str] = field(default_factory=list)
    describes: int = 0

    def __call__(self, service: str, client: Any) -> None:
        if service == "ec2":
            client.meta.events.register("after-call.ec2.CreateFleet", self._launched)
            client.meta.events.register("after-call.ec2.DescribeInstances", self._hide)

    def _launched(self, parsed: dict[str, Any], **_: Any) -> None:
        for group in parsed.get("Instances", []):
            for iid in group.get("InstanceIds", []):
                self.launched.append(iid)
                self.hidden[iid] = self.calls

    def _hide(self, parsed: dict[str, Any], **_: Any) -> None:
        self.describes += 1
        hiding = {i for i, left in self.hidden.items() if left > 0}
        for iid in hiding:
            self.hidden[iid] -= 1
        for reservation in parsed.get("Reservations", []):
            reservation["Instances"] = [
                i for i in reservation.get("Instances", []) if i.get("InstanceId") not in hiding
            ]
        parsed["Reservations"] = [r for r in parsed.get("Reservations", []) if r["Instances"]]


SPOT_DRY = (
    "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
    "available that matches your request. Launching EC2 instance failed."
)


@dataclass
class DryGroups:
    """Auto Scaling groups whose spot pools have no capacity, as AWS shows it: a
    ``SetDesiredCapacity`` is accepted (the desired capacity rises) but no instance starts, and
    each launch attempt is a ``Failed`` scaling activity saying why (moto launches at once and
    keeps no activities)."""

    groups: frozenset[str]
    desired: dict[str, int] = field(default_factory=dict)  # group -> desired it was set to
    failed_at: dict[str, datetime] = field(default_factory=dict)  # group -> failed attempt
    described: int = 0  # DescribeScalingActivities calls

    def __call__(self, service: str, client: Any) -> None:
        if service == "autoscaling":
            client.meta.events.register("before-call.*.SetDesiredCapacity", self._accept)
            client.meta.events.register("after-call.*.DescribeAutoScalingGroups", self._show)
            client.meta.events.register("before-call.*.DescribeScalingActivities", self._history)

    def _accept(self, params: dict[str, Any], **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        fields = form(params)
        name = fields.get("AutoScalingGroupName", "")
        if name not in self.groups:
            return None
        self.desired[name] = int(fields["DesiredCapacity"])
        self.failed_at[name] = datetime.now(UTC)
        return _Response(200), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _show(self, parsed: dict[str, Any], **_: Any) -> None:
        for group in parsed.get("AutoScalingGroups", []):
            if group.get("AutoScalingGroupName") in self.desired:
                group["DesiredCapacity"] = self.desired[group["AutoScalingGroupName"]]

    def _history(self, params: dict[str, Any], **_: Any) -> tuple[_Response, dict[str, Any]]:
        self.described += 1
        name = form(params).get("AutoScalingGroupName", "")
        activities = []
        if name in self.failed_at:
            at = self.failed_at[name]
            activities.append(
                {
                    "ActivityId": "0a1b2c3d-0000-4000-8000-000000000001",
                    "AutoScalingGroupName": name,
                    "Description": f"Launching a new EC2 instance.  Status Reason: {SPOT_DRY}",
                    "Cause": f"At {at:%Y-%m-%dT%H:%M:%SZ} an instance was started in response "
                    "to a difference between desired and actual capacity, increasing the "
                    "capacity from 0 to 1.",
                    "StartTime": at,
                    "EndTime": at,
                    "StatusCode": "Failed",
                    "StatusMessage": SPOT_DRY,
                    "Progress": 100,
                }
            )
        reply = {"Activities": activities, "ResponseMetadata": {"HTTPStatusCode": 200}}
        return _Response(200), reply
