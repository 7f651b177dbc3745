"""Turn the body of an SQS message into a typed signal.

Most messages come from EventBridge rules. EventBridge sends every event in the same
*envelope*: ``id``, ``source``, ``detail-type``, ``time``, ``resources`` and a ``detail``
object that differs for each kind of event. The intake hands us the raw message body.
:func:`parse_event` checks the envelope and picks a handler based on ``(source,
detail-type)``. Each handler then checks the ``detail`` fields it needs and returns a frozen
:class:`Signal` subclass. The rest of the scaler works only with these signals and never looks
at raw JSON.

Auto Scaling can also send lifecycle notifications *directly* to the queue, without
EventBridge, when a lifecycle hook's ``NotificationTargetARN`` is the queue. Such a body is a
flat object (``LifecycleTransition``, ``LifecycleHookName``, ``AutoScalingGroupName``,
``EC2InstanceId``, ``LifecycleActionToken``, ``RequestId``, ``Time``, ...) and is recognised
by a top-level ``LifecycleTransition`` key. A terminating transition becomes a
:class:`LifecycleTerminate` whose ``event_id`` is the ``RequestId``, or the
``LifecycleActionToken`` if the ``RequestId`` is missing, empty or not a string, so copies of
one lifecycle action share an id. A missing or unparseable ``Time`` becomes ``None``. Any
other transition is ignored. When the hook is created it sends an
``autoscaling:TEST_NOTIFICATION``, recognised by its ``Event`` key.

There are three possible outcomes:

* **A signal we act on**, such as :class:`SpotInterruption` or :class:`LifecycleTerminate`.
* **Ignored**: the body is well formed but we do not consume it, e.g. an unknown
  ``(source, detail-type)``, a Health event that is not an EC2 scheduled change, an ECS
  service action other than a placement failure, a direct lifecycle notification for a launch
  (or any transition other than terminating), or the ``autoscaling:TEST_NOTIFICATION`` that
  Auto Scaling sends when a hook is created. The intake deletes the message and does nothing.
* **Malformed**: :class:`MalformedEvent` is raised. ``reason`` is a short label for metrics
  (too large, not JSON, not an object, bad envelope, bad detail). An object that is neither an
  envelope nor a direct Auto Scaling notification has a bad envelope. A direct notification
  whose ``LifecycleTransition`` is not a string, or a terminating one missing a field we need,
  has a bad detail. The intake does not delete the message, so SQS redrives it to the
  dead-letter queue where a person can look at it.

Validation is strict about the types of the fields we use: an instance id must be a non-empty
string and an ECS ``version`` must be an int, not ``"4"`` or ``true``. It is lenient about
everything else: extra fields are ignored, and timestamps we cannot parse (AWS's own doc
examples contain ``"yyyy-mm-ddThh:mm:ssZ"``) become ``None``, so the intake falls back to the
time it received the message. All datetimes returned are timezone-aware UTC.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

__all__ = [
    "MAX_BODY_BYTES",
    "SIGNAL_KINDS",
    "ContainerInstanceChange",
    "Ignored",
    "InstanceStateChange",
    "LifecycleTerminate",
    "MalformedEvent",
    "RebalanceRecommendation",
    "ScheduledChange",
    "ServicePlacementFailure",
    "Signal",
    "SpotInterruption",
    "TaskStateChange",
    "instance_ids",
    "parse_event",
]

MAX_BODY_BYTES: Final = 262_144
"""Largest body we will parse, in bytes (the SQS message size limit, 256 KiB)."""

AUTOSCALING_SOURCE: Final = "aws.autoscaling"
TEST_NOTIFICATION: Final = "autoscaling:TEST_NOTIFICATION"
TERMINATING: Final = "autoscaling:EC2_INSTANCE_TERMINATING"
PLACEMENT_FAILURE: Final = "SERVICE_TASK_PLACEMENT_FAILURE"
_MAX_MESSAGE: Final = 200

MalformedReason = Literal[
    "too_large", "not_json", "not_object", "invalid_envelope", "invalid_detail"
]


class MalformedEvent(ValueError):
    """The body is not an event we can read. ``reason`` is a short machine label and
    ``str(exc)`` is a human-readable message (never the whole body)."""

    def __init__(self, reason: MalformedReason, message: str) -> None:
        super().__init__(message[:_MAX_MESSAGE])
        self.reason: MalformedReason = reason


# --- signals -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """Base of every signal. ``KIND`` is a class constant, used as a metric label."""

    KIND: ClassVar[str]
    event_id: str
    time: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotInterruption(Signal):
    """EC2 will reclaim this Spot instance in about two minutes."""

    KIND: ClassVar[str] = "spot_interruption"
    instance_id: str
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalanceRecommendation(Signal):
    """This Spot instance is at higher risk of interruption."""

    KIND: ClassVar[str] = "rebalance_recommendation"
    instance_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceStateChange(Signal):
    KIND: ClassVar[str] = "instance_state_change"
    instance_id: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleTerminate(Signal):
    """An Auto Scaling terminate lifecycle hook is waiting for us to complete it."""

    KIND: ClassVar[str] = "lifecycle_terminate"
    instance_id: str
    group_name: str
    hook_name: str
    token: str
    transition: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledChange(Signal):
    """An AWS Health EC2 scheduled change (e.g. retirement or maintenance)."""

    KIND: ClassVar[str] = "scheduled_change"
    instance_ids: tuple[str, ...]
    start_time: datetime | None
    event_type_code: str
    end_time: datetime | None = None  # when the event window ends, if AWS Health says


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerInstanceChange(Signal):
    KIND: ClassVar[str] = "container_instance_change"
    cluster_arn: str
    container_instance_arn: str
    ec2_instance_id: str
    status: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStateChange(Signal):
    KIND: ClassVar[str] = "task_state_change"
    cluster_arn: str
    task_arn: str
    last_status: str
    desired_status: str
    stop_code: str | None
    group: str | None
    container_instance_arn: str | None
    version: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePlacementFailure(Signal):
    """ECS could not place a service's task. ``service_arn`` comes from the envelope's
    ``resources`` because the detail does not contain it; it is ``""`` if no resource
    there is a service ARN."""

    KIND: ClassVar[str] = "service_placement_failure"
    cluster_arn: str
    service_arn: str
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored(Signal):
    """A well-formed event that we do not consume."""

    KIND: ClassVar[str] = "ignored"
    source: str
    detail_type: str


SIGNAL_KINDS: Final[tuple[str, ...]] = tuple(
    cls.KIND
    for cls in (
        SpotInterruption,
        RebalanceRecommendation,
        InstanceStateChange,
        LifecycleTerminate,
        ScheduledChange,
        ContainerInstanceChange,
        TaskStateChange,
        ServicePlacementFailure,
        Ignored,
    )
)


def instance_ids(signal: Signal) -> tuple[str, ...]:
    """The EC2 instance ids that ``signal`` concerns (empty for ECS task/service signals)."""
    match signal:
        case (
            SpotInterruption()
            | RebalanceRecommendation()
            | InstanceStateChange()
            | LifecycleTerminate()
        ):
            return (signal.instance_id,)
        case ScheduledChange():
            return signal.instance_ids
        case ContainerInstanceChange():
            return (signal.ec2_instance_id,)
        case _:
            return ()


# --- timestamps --------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp as aware UTC, or ``None`` if it is absent or unparseable."""
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        return None


def _rfc1123_time(value: object) -> datetime | None:
    """An RFC-1123 timestamp (AWS Health ``startTime``), falling back to ISO-8601."""
    if not isinstance(value, str):
        return None
    try:
        return _utc(parsedate_to_datetime(value))
    except (ValueError, TypeError, IndexError, OverflowError):
        return _iso_time(value)


# --- pydantic models of the envelope and of each detail we read --------------------------

_NonEmpty = Annotated[str, Field(min_length=1)]
_IsoTime = Annotated[datetime | None, BeforeValidator(_iso_time)]
_HealthTime = Annotated[datetime | None, BeforeValidator(_rfc1123_time)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Envelope(_Model):
    id: _NonEmpty
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]
    version: str | None = None
    account: str | None = None
    time: _IsoTime = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)


class _SpotDetail(_Model):
    instance_id: _NonEmpty = Field(alias="instance-id")
    instance_action: str = Field(alias="instance-action")


class _RebalanceDetail(_Model):
    instance_id: _NonEmpty = Field(alias="instance-id")


class _StateDetail(_Model):
    instance_id: _NonEmpty = Field(alias="instance-id")
    state: str


class _LifecycleHeader(_Model):
    transition: str = Field(alias="LifecycleTransition")


class _LifecycleDetail(_LifecycleHeader):
    instance_id: _NonEmpty = Field(alias="EC2InstanceId")
    group_name: _NonEmpty = Field(alias="AutoScalingGroupName")
    hook_name: _NonEmpty = Field(alias="LifecycleHookName")
    token: _NonEmpty = Field(alias="LifecycleActionToken")


class _HealthHeader(_Model):
    service: str
    category: str = Field(alias="eventTypeCategory")


class _HealthEntity(_Model):
    entity_value: str | None = Field(default=None, alias="entityValue")


class _HealthDetail(_HealthHeader):
    event_type_code: str = Field(alias="eventTypeCode")
    start_time: _HealthTime = Field(default=None, alias="startTime")
    end_time: _HealthTime = Field(default=None, alias="endTime")
    entities: list[_HealthEntity] = Field(default_factory=list, alias="affectedEntities")


class _ContainerInstanceDetail(_Model):
    cluster_arn: _NonEmpty = Field(alias="clusterArn")
    container_instance_arn: _NonEmpty = Field(alias="containerInstanceArn")
    ec2_instance_id: _NonEmpty = Field(alias="ec2InstanceId")
    status: str
    version: int


class _TaskDetail(_Model):
    cluster_arn: _NonEmpty = Field(alias="clusterArn")
    task_arn: _NonEmpty = Field(alias="taskArn")
    last_status: str = Field(alias="lastStatus")
    desired_status: str = Field(alias="desiredStatus")
    stop_code: str | None = Field(default=None, alias="stopCode")
    group: str | None = None
    container_instance_arn: str | None = Field(default=None, alias="containerInstanceArn")
    version: int | None = None


class _ServiceActionHeader(_Model):
    event_name: str = Field(alias="eventName")


class _PlacementFailureDetail(_ServiceActionHeader):
    cluster_arn: _NonEmpty = Field(alias="clusterArn")
    reason: str | None = None


# --- validation helpers ------------------------------------------------------------------

_M = TypeVar("_M", bound=_Model)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    loc = ".".join(str(part) for part in errors[0]["loc"]) or "<root>"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {errors[0]['msg']}{more}"


def _decode(body: str | bytes) -> dict[str, Any]:
    size = len(body.encode("utf-8", "surrogatepass")) if isinstance(body, str) else len(body)
    if size > MAX_BODY_BYTES:
        raise MalformedEvent("too_large", f"body is {size} bytes, limit is {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("not_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedEvent("not_object", f"body is a JSON {type(data).__name__}, not an object")
    return data


def _envelope(data: dict[str, Any]) -> _Envelope:
    try:
        return _Envelope.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent("invalid_envelope", f"invalid envelope: {_first_error(exc)}") from None


def _validate(model: type[_M], data: dict[str, Any], what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent("invalid_detail", f"{what}: {_first_error(exc)}") from None


def _detail(model: type[_M], envelope: _Envelope) -> _M:
    return _validate(model, envelope.detail, f"{envelope.detail_type[:60]!r} detail")


def _ignored(envelope: _Envelope) -> Ignored:
    return Ignored(
        event_id=envelope.id,
        time=envelope.time,
        source=envelope.source,
        detail_type=envelope.detail_type,
    )


def _test_notification(data: dict[str, Any]) -> Ignored:
    request_id = data.get("RequestId")
    return Ignored(
        event_id=request_id if isinstance(request_id, str) else "",
        time=_iso_time(data.get("Time")),
        source=AUTOSCALING_SOURCE,
        detail_type=TEST_NOTIFICATION,
    )


def _str_or_empty(value: object) -> str:
    return value if isinstance(value, str) else ""


def _direct_lifecycle(data: dict[str, Any]) -> Signal:
    """A lifecycle notification that Auto Scaling sent straight to the queue (flat body)."""
    transition = _validate(_LifecycleHeader, data, "lifecycle notification").transition
    request_id = _str_or_empty(data.get("RequestId"))
    time = _iso_time(data.get("Time"))
    if transition != TERMINATING:
        return Ignored(
            event_id=request_id or _str_or_empty(data.get("LifecycleActionToken")),
            time=time,
            source=AUTOSCALING_SOURCE,
            detail_type=transition,
        )
    d = _validate(_LifecycleDetail, data, f"{TERMINATING!r} notification")
    return LifecycleTerminate(
        event_id=request_id or d.token,
        time=time,
        instance_id=d.instance_id,
        group_name=d.group_name,
        hook_name=d.hook_name,
        token=d.token,
        transition=d.transition,
    )


def _instance_ids_in(values: Iterable[str]) -> tuple[str, ...]:
    """Instance ids among ``values``: ``i-…`` itself, or the id ending ``arn:…:instance/i-…``.
    Other values (hosts, volumes, …) are skipped; duplicates are dropped, order kept."""
    candidates = (value.rsplit(":instance/", 1)[-1] for value in values)
    return tuple(dict.fromkeys(c for c in candidates if c.startswith("i-") and len(c) > 2))


# --- one handler per (source, detail-type) -----------------------------------------------


def _spot(env: _Envelope) -> Signal:
    d = _detail(_SpotDetail, env)
    return SpotInterruption(
        event_id=env.id, time=env.time, instance_id=d.instance_id, action=d.instance_action
    )


def _rebalance(env: _Envelope) -> Signal:
    d = _detail(_RebalanceDetail, env)
    return RebalanceRecommendation(event_id=env.id, time=env.time, instance_id=d.instance_id)


def _state(env: _Envelope) -> Signal:
    d = _detail(_StateDetail, env)
    return InstanceStateChange(
        event_id=env.id, time=env.time, instance_id=d.instance_id, state=d.state
    )


def _lifecycle(env: _Envelope) -> Signal:
    if _detail(_LifecycleHeader, env).transition != TERMINATING:
        return _ignored(env)
    d = _detail(_LifecycleDetail, env)
    return LifecycleTerminate(
        event_id=env.id,
        time=env.time,
        instance_id=d.instance_id,
        group_name=d.group_name,
        hook_name=d.hook_name,
        token=d.token,
        transition=d.transition,
    )


def _health(env: _Envelope) -> Signal:
    header = _detail(_HealthHeader, env)
    if (header.service, header.category) != ("EC2", "scheduledChange"):
        return _ignored(env)
    d = _detail(_HealthDetail, env)
    ids = _instance_ids_in(e.entity_value or "" for e in d.entities)
    if not ids:
        ids = _instance_ids_in(env.resources)
    return ScheduledChange(
        event_id=env.id,
        time=env.time,
        instance_ids=ids,
        start_time=d.start_time,
        end_time=d.end_time,
        event_type_code=d.event_type_code,
    )


def _container_instance(env: _Envelope) -> Signal:
    d = _detail(_ContainerInstanceDetail, env)
    return ContainerInstanceChange(
        event_id=env.id,
        time=env.time,
        cluster_arn=d.cluster_arn,
        container_instance_arn=d.container_instance_arn,
        ec2_instance_id=d.ec2_instance_id,
        status=d.status,
        version=d.version,
    )


def _task(env: _Envelope) -> Signal:
    d = _detail(_TaskDetail, env)
    return TaskStateChange(
        event_id=env.id,
        time=env.time,
        cluster_arn=d.cluster_arn,
        task_arn=d.task_arn,
        last_status=d.last_status,
        desired_status=d.desired_status,
        stop_code=d.stop_code,
        group=d.group,
        container_instance_arn=d.container_instance_arn,
        version=d.version,
    )


def _service_action(env: _Envelope) -> Signal:
    if _detail(_ServiceActionHeader, env).event_name != PLACEMENT_FAILURE:
        return _ignored(env)
    d = _detail(_PlacementFailureDetail, env)
    services = [r for r in env.resources if ":service/" in r]
    return ServicePlacementFailure(
        event_id=env.id,
        time=env.time,
        cluster_arn=d.cluster_arn,
        service_arn=services[0] if services else "",
        reason=d.reason,
    )


_HANDLERS: Final[dict[tuple[str, str], Callable[[_Envelope], Signal]]] = {
    ("aws.ec2", "EC2 Spot Instance Interruption Warning"): _spot,
    ("aws.ec2", "EC2 Instance Rebalance Recommendation"): _rebalance,
    ("aws.ec2", "EC2 Instance State-change Notification"): _state,
    (AUTOSCALING_SOURCE, "EC2 Instance-terminate Lifecycle Action"): _lifecycle,
    ("aws.health", "AWS Health Event"): _health,
    ("aws.ecs", "ECS Container Instance State Change"): _container_instance,
    ("aws.ecs", "ECS Task State Change"): _task,
    ("aws.ecs", "ECS Service Action"): _service_action,
}


def parse_event(body: str | bytes) -> Signal:
    """Parse an SQS message body into a :class:`Signal`.

    Raises :class:`MalformedEvent` if the body is not an event we can read.
    """
    data = _decode(body)
    if data.get("Event") == TEST_NOTIFICATION:
        return _test_notification(data)
    if "LifecycleTransition" in data:
        return _direct_lifecycle(data)
    envelope = _envelope(data)
    handler = _HANDLERS.get((envelope.source, envelope.detail_type), _ignored)
    return handler(envelope)
