"""aiobotocore clients that count every call they make.

:class:`AwsClients` opens one client per service for the life of the process, all with the same
region and endpoint (``AWS_ENDPOINT_URL`` for a local test endpoint). A botocore event hook on
each client increments ``scaler_aws_calls_total{service,operation,outcome}`` once per API call
(retries inside botocore are part of the one call), so the metric is the ground truth of what the
scaler asked of AWS; ``scaler_aws_call_seconds{service,operation}`` times each call from
``before-call`` to ``after-call`` (or ``after-call-error``): its retries, backoff and any wait at
the priority gate included, as the caller waits for it.

Retries have ONE layer: botocore's, up to ``max_attempts`` HTTP attempts per call in all
(``total_max_attempts``), with its jittered exponential backoff. The scaler does not wrap calls
in retries of its own, which would multiply the attempts of a throttled call (and the load on a
throttled bucket). Each retried throttled attempt counts in ``scaler_throttle_retries_total``.

Urgent calls get clients of their own (:attr:`AwsClients.urgent_ecs`,
:attr:`AwsClients.urgent_autoscaling`), in ``standard`` retry mode: botocore's adaptive mode
paces a client by a token bucket, and its retry quota is per client too, so a flood of throttled
background reads on a shared client would slow or exhaust what the drains and lifecycle
completions need. The background ECS client waits at the :class:`PriorityGate` before every
attempt, so urgent calls reach AWS ahead of queued reads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from botocore.loaders import Loader, create_loader

from scaler.aws.concurrency import PriorityGate
from scaler.metrics import Metrics

SERVICES = ("sqs", "ecs", "ec2", "autoscaling", "cloudwatch", "dynamodb")
URGENT_SERVICES = ("ecs", "autoscaling")  # drains and deregistrations; lifecycle actions
URGENT_RETRY_MODE = "standard"  # no client-side rate limiter holding urgent calls back
THROTTLING_CODES = frozenset(
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
# Key under which an error answer carries the service that gave it (its IAM prefix), so that an
# error can name the IAM action: ``ClientError.response[SERVICE_KEY]``.
SERVICE_KEY = "ScalerService"


@dataclass(frozen=True)
class AwsTarget:
    """Where and how to reach AWS."""

    region: str
    endpoint_url: str | None = None
    max_attempts: int = 5  # HTTP attempts per call in all, the first one included
    retry_mode: str = "adaptive"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # (access key id, secret) given outright; None: the standard provider chain (production)
    credentials: tuple[str, str] | None = None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, or None for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def is_not_found(exc: BaseException) -> bool:
    """Does AWS say the resource asked for does not exist (or its id is malformed)?"""
    code = error_code(exc) or ""
    return "NotFound" in code or "Malformed" in code


_STARTED = "scaler_started"  # key of a call's start (monotonic seconds) in botocore's context


class _CallCounter:
    """botocore event handlers that count and time each API call by its outcome."""

    def __init__(self, metrics: Metrics, service: str) -> None:
        self._metrics = metrics
        self._service = service

    def before_call(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context[_STARTED] = time.monotonic()

    def after_call(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        outcome = "ok"
        if http_response.status_code >= 300:
            outcome = str(parsed.get("Error", {}).get("Code") or http_response.status_code)
        self._count(model.name, outcome)
        self._time(model.name, context)

    def after_call_error(
        self, event_name: str, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        # event_name is "after-call-error.<service>.<Operation>"
        operation = event_name.rsplit(".", 1)[-1]
        self._count(operation, "network_error")
        self._time(operation, context)

    def _time(self, operation: str, context: dict[str, Any] | None) -> None:
        started = (context or {}).pop(_STARTED, None)
        if started is not None:
            seconds = time.monotonic() - started
            self._metrics.aws_call_seconds.labels(self._service, operation).observe(seconds)

    def _count(self, operation: str, outcome: str) -> None:
        self._metrics.aws_calls.labels(self._service, operation, outcome).inc()


def _tag_errors(service: str) -> Callable[..., None]:
    """An ``after-call`` handler marking error answers with ``service`` (see SERVICE_KEY)."""

    def tag(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            parsed[SERVICE_KEY] = service

    return tag


def _config(target: AwsTarget, mode: str) -> AioConfig:
    return AioConfig(
        # botocore's "max_attempts" counts retries only; "total_max_attempts" counts them all
        retries={"total_max_attempts": target.max_attempts, "mode": mode},
        connect_timeout=target.connect_timeout,
        read_timeout=target.read_timeout,
        max_pool_connections=50,
    )


@functools.cache
def _loader() -> Loader:
    """botocore's service-model loader, shared by every session of the process: its models
    (megabytes of JSON) are read once, not once per client."""
    return create_loader()


def _keys(credentials: tuple[str, str] | None) -> dict[str, str]:
    if credentials is None:
        return {}
    return {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}


# (service name, client) -> None: a seam to add event hooks to each client (fault injection).
Instrument = Callable[[str, Any], None]


class AwsClients:
    """One counted aiobotocore client per service, and urgent ones for ECS and Auto Scaling;
    use as an async context manager."""

    def __init__(
        self, target: AwsTarget, metrics: Metrics, instrument: Instrument | None = None
    ) -> None:
        self.target = target
        self._metrics = metrics
        self._extra = instrument
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._urgent: dict[str, Any] = {}
        self.gate = PriorityGate()  # urgent calls hold it; background ECS attempts wait at it
        # How the last failed attempt of any call failed (a refused connection, a throttling
        # answer...), even one botocore went on to retry: what a call cut off by a deadline was
        # struggling with.
        self.last_failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None  # told of each one

    async def __aenter__(self) -> AwsClients:
        session = get_session()
        session.register_component("data_loader", _loader())
        for service in SERVICES:
            self._clients[service] = await self._open(session, service, self.target.retry_mode)
        for service in URGENT_SERVICES:
            self._urgent[service] = await self._open(session, service, URGENT_RETRY_MODE)
        self._clients["ecs"].meta.events.register("before-send.*.*", self.gate.background)
        return self

    async def _open(self, session: Any, service: str, mode: str) -> Any:
        client = await self._stack.enter_async_context(
            session.create_client(
                service,
                region_name=self.target.region,
                endpoint_url=self.target.endpoint_url,
                config=_config(self.target, mode),
                **_keys(self.target.credentials),
            )
        )
        self._instrument(client, service)
        return client

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def _instrument(self, client: Any, service: str) -> None:
        counter = _CallCounter(self._metrics, service)
        client.meta.events.register("before-call.*.*", counter.before_call)
        client.meta.events.register("after-call.*.*", counter.after_call)
        client.meta.events.register("after-call-error.*.*", counter.after_call_error)
        client.meta.events.register("after-call.*.*", _tag_errors(service))
        client.meta.events.register("needs-retry.*.*", functools.partial(self._note, service))
        if self._extra is not None:
            self._extra(service, client)

    def _note(
        self,
        service: str,
        caught_exception: BaseException | None = None,
        response: tuple[Any, dict[str, Any]] | None = None,
        operation: Any = None,
        attempts: int = 1,
        **_: Any,
    ) -> None:
        """After each attempt of a call: remember how it failed, if it did, and count a
        throttled attempt that botocore will try again."""
        failure = caught_exception
        if failure is None and response is not None and response[0].status_code >= 300:
            failure = ClientError({**response[1], SERVICE_KEY: service}, operation.name)
        if failure is None:
            return
        self.last_failure = failure
        if self.on_failure is not None:
            self.on_failure(failure)
        if error_code(failure) in THROTTLING_CODES and attempts < self.target.max_attempts:
            self._metrics.throttle_retries.labels(operation.name).inc()

    @property
    def sqs(self) -> Any:
        return self._clients["sqs"]

    @property
    def ecs(self) -> Any:
        return self._clients["ecs"]

    @property
    def urgent_ecs(self) -> Any:
        """ECS for drains and deregistrations: its own retries and connections, never gated."""
        return self._urgent["ecs"]

    @property
    def urgent_autoscaling(self) -> Any:
        """Auto Scaling for lifecycle heartbeats and completions: its own retries."""
        return self._urgent["autoscaling"]

    @property
    def ec2(self) -> Any:
        return self._clients["ec2"]

    @property
    def autoscaling(self) -> Any:
        return self._clients["autoscaling"]

    @property
    def cloudwatch(self) -> Any:
        return self._clients["cloudwatch"]

    @property
    def dynamodb(self) -> Any:
        return self._clients["dynamodb"]
