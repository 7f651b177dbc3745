"""Make chosen AWS calls fail, through botocore's own event hooks (no mocks of our code).

A ``before-call`` handler that returns a response short-circuits the HTTP request: the client
then raises the error exactly as if AWS had answered it, after validating the request against
the service model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FailFirst:
    """Fail the first ``times`` calls of ``operation`` with ``code``."""

    service: str
    operation: str
    times: int
    code: str = "ThrottlingException"
    message: str = "Rate exceeded"
    status: int = 400
    failed: int = 0

    def __call__(self, service: str, client: Any) -> None:
        if service == self.service:
            client.meta.events.register(f"before-call.*.{self.operation}", self._maybe_fail)

    def _maybe_fail(self, **_: Any) -> tuple[_Response, dict[str, Any]] | None:
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
