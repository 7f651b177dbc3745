"""What went wrong with AWS, in one line a user can act on.

Every command that talks to AWS (``run``, ``plan``, ``snapshot``) turns the exceptions of
botocore into a :class:`Problem`: *what is wrong* (naming the setting, URL or IAM action
involved) and *what to do*, with the exit status (2 for what the user can fix, 1 for what is
outside their control) and whether trying again later may help (``transient``: the endpoint
cannot be reached, AWS throttles or fails). :func:`explain` is the only place that knows the
shapes of those exceptions; :func:`checked` wraps a coroutine so that anything it recognizes
leaves as an :class:`AwsFailure`, which the command line prints as ``scaler: <line>``.

An exception that is not about AWS (a bug) is left alone.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from scaler.aws.clients import SERVICE_KEY, error_code

T = TypeVar("T")

USER, OUTSIDE = 2, 1  # exit statuses: the user can fix it / the cause is outside their control

DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthorizationError",
        "NotAuthorized",
    }
)
BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "AuthFailure",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
QUEUE_MISSING = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# IAM authorizes some operations under another action's name
IAM_ACTION = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}


@dataclass(frozen=True)
class Context:
    """What the command was pointed at, to name in the line."""

    region: str
    endpoint_url: str | None = None
    cluster: str | None = None
    queue_url: str | None = None
    lease_table: str | None = None


@dataclass(frozen=True)
class Problem:
    what: str
    todo: str
    status: int = USER
    transient: bool = False

    @property
    def line(self) -> str:
        return f"{self.what}; {self.todo}"


class AwsFailure(Exception):
    """An AWS problem the command cannot get past; ``problem.line`` says what and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.line)
        self.problem = problem


async def checked(call: Awaitable[T], context: Context) -> T:
    """``await call``, turning any AWS exception it raises into an :class:`AwsFailure`."""
    try:
        return await call
    except Exception as exc:
        problem = explain(exc, context)
        if problem is None:
            raise
        raise AwsFailure(problem) from None


def explain(exc: BaseException, context: Context) -> Problem | None:
    """The :class:`Problem` ``exc`` stands for, or None if it is not about AWS."""
    if isinstance(exc, AwsFailure):
        return exc.problem
    if isinstance(exc, ClientError):
        return _answered(exc, context)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return _no_credentials(exc)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return unreachable(context, str(exc.kwargs.get("endpoint_url") or ""))
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return too_slow(context, str(getattr(exc, "kwargs", {}).get("endpoint_url") or ""))
    if isinstance(exc, BotoCoreError):
        return Problem(
            f"AWS client error: {_one_line(str(exc))}",
            "check the AWS_* environment variables and the network",
            OUTSIDE,
        )
    return None


def unreachable(context: Context, url: str = "") -> Problem:
    """The endpoint did not accept a connection."""
    if context.endpoint_url:
        return Problem(
            f"AWS_ENDPOINT_URL: cannot reach {context.endpoint_url}",
            "check the URL and that the endpoint is up, or unset AWS_ENDPOINT_URL",
            transient=True,
        )
    return Problem(
        f"cannot reach AWS at {url or 'the ' + context.region + ' endpoints'}",
        "check the network route to AWS (NAT, VPC endpoints, security groups) and AWS_REGION",
        transient=True,
    )


def too_slow(context: Context, url: str = "") -> Problem:
    """The endpoint accepted the connection but did not answer in time."""
    where = context.endpoint_url or url or f"the {context.region} endpoints"
    return Problem(
        f"AWS at {where} did not answer in time",
        "check the network and AWS's health; try again later",
        OUTSIDE,
        transient=True,
    )


def cluster_missing(context: Context) -> Problem:
    return Problem(
        f"SCALER_CLUSTER: cluster {context.cluster!r} not found in {context.region}",
        "set SCALER_CLUSTER to the name or ARN of an existing ECS cluster (or check AWS_REGION)",
    )


def iam_action(exc: ClientError) -> str:
    """The IAM action of the call that raised ``exc``, as ``service:Operation``."""
    service = exc.response.get(SERVICE_KEY)
    action = f"{service}:{exc.operation_name}" if service else exc.operation_name
    return IAM_ACTION.get(action, action)


def _answered(exc: ClientError, context: Context) -> Problem:
    code = error_code(exc) or "?"
    action = iam_action(exc)
    if code in DENIED:
        return Problem(
            f"access denied to {action}",
            f"the scaler's task role needs {action} (see deploy/iam)",
        )
    if code == "ClusterNotFoundException":
        return cluster_missing(context)
    if code in QUEUE_MISSING:
        return Problem(
            f"SCALER_QUEUE_URL: queue {context.queue_url} does not exist",
            "create it (see deploy/) or set SCALER_QUEUE_URL to the existing queue's URL",
        )
    if code == "ResourceNotFoundException" and action.startswith("dynamodb:"):
        return Problem(
            f"SCALER_LEASE_TABLE: table {context.lease_table!r} not found",
            "create it (see deploy/) or unset SCALER_LEASE_TABLE",
        )
    return _refused(code, action, exc)


def _refused(code: str, action: str, exc: ClientError) -> Problem:
    if code in BAD_CREDENTIALS:
        return Problem(
            f"AWS rejected the credentials ({code} on {action})",
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        )
    if code in EXPIRED:
        return Problem(
            f"the AWS credentials have expired ({code} on {action})",
            "refresh them (or the session token in AWS_SESSION_TOKEN)",
        )
    if code in THROTTLED:
        return Problem(f"AWS is throttling {action}", "try again later", OUTSIDE, transient=True)
    message = _one_line(str(exc.response.get("Error", {}).get("Message") or ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if status >= 500:
        return Problem(f"AWS failed {action} ({code})", "try again later", OUTSIDE, transient=True)
    return Problem(
        f"AWS refused {action}: {code}" + (f" ({message})" if message else ""),
        "check the settings it was called with (SCALER_CLUSTER, AWS_REGION...)",
    )


def _no_credentials(exc: Any) -> Problem:
    if isinstance(exc, PartialCredentialsError):
        return Problem(
            f"incomplete AWS credentials: {exc.kwargs.get('cred_var')} is missing "
            f"({exc.kwargs.get('provider')})",
            "set it, or remove the partial credentials",
        )
    return Problem(
        "no AWS credentials found",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM "
        "role (an ECS task role)",
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
