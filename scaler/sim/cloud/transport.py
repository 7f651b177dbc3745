"""The simulated AWS's wire: real aiobotocore clients whose calls are answered in-process.

The scaler's clients stay what production uses: aiobotocore clients, built by
:class:`scaler.aws.clients.AwsClients`, with their event hooks, paginators and exceptions. Only
the last step changes. botocore validates every request against the service model (a missing or
misspelt parameter, a wrong type or a value below its minimum fails as it fails against AWS,
before anything is sent), then emits ``before-call``; a handler that answers there replaces the
HTTP exchange. :meth:`SimulatedAws.install` (an :data:`~scaler.aws.clients.Instrument`) hooks
every client so:

- ``before-parameter-build`` keeps the call's parameters as the caller wrote them (botocore
  serializes them into the protocol's wire form afterwards);
- ``before-call`` hands them to the simulated service, waits the call's latency in the loop's
  (virtual) time, and answers with its reply or its error, which botocore raises as the same
  ``ClientError`` (``client.exceptions.<Code>`` included) that AWS's answer would give.

A call of an operation the simulated service does not implement fails loudly
(:class:`NotSimulated`), so the simulated AWS can never answer something it does not model.

What botocore does per request only to put it on the wire is skipped (:func:`_lighten`), as
nothing goes on a wire: the request is validated against the service model as before, but not
serialized into the protocol's form; the endpoint is the client's own URL, not resolved again by
the endpoint ruleset at each call; the User-Agent header is built once per client. These were
most of a simulated call's cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidationDecorator

from scaler.sim.cloud.faults import SLOWER, Faults
from scaler.sim.cloud.limits import THROTTLED, Limits, no_limits

PARAMS = "scaler.sim.params"  # the call's own parameters, in botocore's request context


class AwsError(Exception):
    """An error answer, as AWS gives it: a code, a message and an HTTP status (and, for SQS,
    the shape name botocore raises it as: its ``QueryErrorCode``)."""

    def __init__(self, code: str, message: str, status: int = 400, shape: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.shape = code, message, status, shape


class NotSimulated(NotImplementedError):
    """The scaler called an operation the simulated AWS does not model."""


class Service(Protocol):
    """One simulated AWS service: ``answer`` returns the parsed reply or raises AwsError."""

    def answer(self, operation: str, params: dict[str, Any]) -> Awaitable[dict[str, Any]]: ...


@dataclass
class _Http:
    """What botocore reads of an HTTP response after a ``before-call`` answer."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SimulatedAws:
    """Answers the calls of every client it is installed on from ``services``, after the
    call's latency, unless its token bucket is empty (:mod:`scaler.sim.cloud.limits`)."""

    services: Mapping[str, Service]
    limits: Limits = field(default_factory=no_limits)
    faults: Faults | None = None
    calls: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, op) -> count

    def install(self, service: str, client: Any) -> None:
        """Hook ``client`` (of ``service``, as :class:`AwsClients` names it) to this world."""
        client.meta.events.register("before-parameter-build.*.*", _keep_params)
        client.meta.events.register("before-call.*.*", self._answerer(service, client))
        _lighten(client)

    def _answerer(
        self, service: str, client: Any
    ) -> Callable[..., Awaitable[tuple[_Http, dict[str, Any]]]]:
        async def answer(
            model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
        ) -> tuple[_Http, dict[str, Any]]:
            call = dict(context.get(PARAMS, {}))
            attempts = 1
            while True:
                reply = await self._attempt(service, model.name, call)
                delay = await _retry_delay(client, model, params, reply, attempts)
                if delay is None:
                    return reply
                await asyncio.sleep(delay)
                attempts += 1

        return answer

    async def _attempt(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[_Http, dict[str, Any]]:
        key = (service, operation)
        self.calls[key] = self.calls.get(key, 0) + 1
        simulated = self.services.get(service)
        if simulated is None:
            raise NotSimulated(f"{service} is not simulated (called {operation})")
        now = asyncio.get_running_loop().time()
        fault = self.faults.hit(now) if self.faults is not None else None
        delay = self.limits.delay(service, operation) * (SLOWER if fault == "slow" else 1.0)
        if delay > 0:
            await asyncio.sleep(delay)
        throttled = self.limits.admit(service, operation, asyncio.get_running_loop().time())
        try:
            if throttled is not None or fault == "throttle":
                raise AwsError(
                    throttled or THROTTLED.get(service, "ThrottlingException"), "Rate exceeded"
                )
            if fault == "errors":
                raise AwsError("InternalError", "We encountered an internal error.", 500)
            reply = await simulated.answer(operation, params)
            if fault == "lost":  # done, but the answer never reaches the client
                raise AwsError("ServiceUnavailable", "Service unavailable.", 503)
        except AwsError as exc:
            return _error(exc)
        return _Http(200), {**reply, "ResponseMetadata": _meta(200)}


async def _retry_delay(
    client: Any,
    model: Any,
    request: dict[str, Any],
    reply: tuple[_Http, dict[str, Any]],
    attempts: int,
) -> float | None:
    """Ask the client's own retry handlers (botocore's ``needs-retry``), as its endpoint does
    after each HTTP attempt, whether and after how long to try ``reply``'s call again."""
    if reply[0].status_code < 300:
        return None
    service_id = client.meta.service_model.service_id.hyphenize()
    responses = await client.meta.events.emit(
        f"needs-retry.{service_id}.{model.name}",
        response=reply,
        endpoint=None,
        operation=model,
        attempts=attempts,
        caught_exception=None,
        request_dict=request,
    )
    delay = next((r for _, r in responses if r is not None), None)
    return None if delay is None or delay is False else float(delay)


def _error(exc: AwsError) -> tuple[_Http, dict[str, Any]]:
    error: dict[str, Any] = {"Code": exc.code, "Message": exc.message}
    if exc.shape:
        error["QueryErrorCode"] = exc.shape
    return _Http(exc.status), {"Error": error, "ResponseMetadata": _meta(exc.status)}


class _ValidateOnly:
    """A client's serializer that validates the request against the service model, as botocore
    does before it serializes (:class:`botocore.validate.ParamValidationDecorator`), and raises
    the same ``ParamValidationError``, but builds only an empty request: nothing is sent."""

    def __init__(self, validator: Any) -> None:
        self._validator = validator

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> dict[str, Any]:
        shape = operation_model.input_shape
        if shape is not None:
            report = self._validator.validate(parameters, shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
        method = operation_model.http.get("method", "POST")
        return {"url_path": "/", "query_string": "", "method": method, "headers": {}, "body": b""}


def _lighten(client: Any) -> None:
    """Skip what botocore does per request only for the wire (see the module docstring); a
    client whose parameter validation is off keeps its own serializer (and validates nothing,
    as against AWS)."""
    serializer = getattr(client, "_serializer", None)
    if isinstance(serializer, ParamValidationDecorator):
        client._serializer = _ValidateOnly(serializer._param_validator)
    if hasattr(client, "_ruleset_resolver"):
        client._ruleset_resolver = None  # the endpoint: the client's URL (meta.endpoint_url)
    creator = getattr(client, "_user_agent_creator", None)
    if creator is not None:
        agent = creator.to_string()
        creator.to_string = lambda: agent


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[PARAMS] = params


def _meta(status: int) -> dict[str, Any]:
    return {"HTTPStatusCode": status, "RequestId": "00000000-0000-4000-8000-000000000000"}


class Operations:
    """A service whose operations are methods named as botocore names them in snake case
    (``ReceiveMessage`` -> ``receive_message``), each taking the call's parameters."""

    async def answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, _snake(operation), None)
        if method is None:
            raise NotSimulated(f"{type(self).__name__} does not simulate {operation}")
        result: dict[str, Any] = await method(**params)
        return result


@cache
def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
