"""A fault-injecting HTTP proxy in front of the local AWS endpoint, for end-to-end tests.

The scaler under test is pointed at the proxy (``AWS_ENDPOINT_URL``), the proxy forwards each
request to the real endpoint (moto) unless a :class:`Fault` picks it: by AWS operation
(``X-Amz-Target`` for JSON protocols, ``Action=`` for query ones), within a time window, at a
rate. Kinds of fault, as the network and AWS produce them:

- ``throttle``: a 400 with the service's throttling error (``ThrottlingException``,
  ``RequestLimitExceeded`` for EC2, ``Throttling`` for Auto Scaling);
- ``error``: a 500 ``InternalError``;
- ``denied``: the IAM refusal (``AccessDeniedException``, ``UnauthorizedOperation`` for EC2,
  ``AccessDenied`` for Auto Scaling), naming the action as AWS does;
- ``reset``: the connection is closed without an answer (the request never arrived);
- ``lost``: the request is carried out, and the connection closed before its answer (so the
  caller retries something that was done: idempotency is put to the test);
- ``latency``: the answer comes ``delay`` seconds late;
- ``down``: every connection is refused-by-closing (the endpoint restarting).

Everything injected is counted in :attr:`FaultProxy.injected`, by kind and operation, and every
request received is logged in arrival order in :attr:`FaultProxy.seen` (``service:Operation``),
so a test can tell which calls reached AWS before which. A fault with a ``limit`` is injected at
most that many times.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

THROTTLE_CODES = {"ec2": "RequestLimitExceeded", "autoscaling": "Throttling"}
DENIED_CODES = {"ec2": "UnauthorizedOperation", "autoscaling": "AccessDenied"}


@dataclass(frozen=True)
class Fault:
    kind: str  # throttle | error | denied | reset | lost | latency | down
    operations: str = "*"  # glob over "service:Operation", e.g. "ecs:*"
    rate: float = 1.0
    start: float = 0.0  # seconds after the proxy's clock was started (FaultProxy.arm)
    end: float = float("inf")
    delay: float = 0.0
    limit: int | None = None  # injected at most this many times (None: no limit)


@dataclass(frozen=True)
class Request:
    head: bytes
    body: bytes
    service: str
    operation: str
    json_protocol: bool


class FaultProxy:
    def __init__(self, upstream: str, faults: list[Fault], seed: int = 7) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = faults
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.seen: list[str] = []  # "service:Operation" of every request, in arrival order
        self._used: Counter[int] = Counter()  # index in faults -> times injected
        self._writers: set[asyncio.StreamWriter] = set()  # open client connections
        self.forwarded = 0
        self._armed_at = float("inf")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def arm(self) -> None:
        """Start the faults' clock (windows count from now)."""
        self._armed_at = time.monotonic()

    def stop(self) -> None:
        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            # A connection accepted just before the close may start its handler a turn later:
            # cancel until none is left, then abort every transport and let the loop run the
            # callbacks that close their sockets (a stopped loop would leave them open).
            while tasks := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.sleep(0)
            for writer in list(self._writers):
                writer.transport.abort()
            for _ in range(3):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def report(self) -> dict[str, object]:
        return {"forwarded": self.forwarded, "injected": dict(sorted(self.injected.items()))}

    # -- the proxy ---------------------------------------------------------------------------

    def _pick(self, request: Request | None) -> Fault | None:
        elapsed = time.monotonic() - self._armed_at
        name = f"{request.service}:{request.operation}" if request else "*"
        for index, fault in enumerate(self.faults):
            if not fault.start <= elapsed < fault.end:
                continue
            if fault.kind != "down" and not fnmatch.fnmatch(name, fault.operations):
                continue
            if fault.limit is not None and self._used[index] >= fault.limit:
                continue
            if self.rng.random() < fault.rate:
                self._used[index] += 1
                return fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.seen.append(f"{request.service}:{request.operation}")
                fault = self._pick(request)
                if fault is not None and fault.kind in ("reset", "down"):
                    self.injected[f"{fault.kind} {request.service}:{request.operation}"] += 1
                    writer.transport.abort()
                    return
                if fault is not None and fault.kind == "lost":
                    self.injected[f"lost {request.service}:{request.operation}"] += 1
                    self.forwarded += 1
                    await self._forward(request)
                    writer.transport.abort()
                    return
                if fault is not None and fault.kind == "latency":
                    self.injected[f"latency {request.service}:{request.operation}"] += 1
                    await asyncio.sleep(fault.delay)
                    fault = None
                if fault is not None:
                    self.injected[f"{fault.kind} {request.service}:{request.operation}"] += 1
                    writer.write(_error(request, fault.kind))
                else:
                    self.forwarded += 1
                    writer.write(await self._forward(request))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _forward(self, request: Request) -> bytes:
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            head = _with_header(request.head, b"Connection", b"close")
            writer.write(head + request.body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        head = _with_header(head + b"\r\n\r\n", b"Content-Length", str(len(body)).encode())
        head = _without_header(head, b"Transfer-Encoding")
        return _with_header(head, b"Connection", b"keep-alive") + body


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    target = ""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"x-amz-target":
            target = value.strip().decode()
    body = await reader.readexactly(length) if length else b""
    if target:
        prefix, _, operation = target.partition(".")
        service = {"AmazonSQS": "sqs", "DynamoDB_20120810": "dynamodb"}.get(prefix, "ecs")
        return Request(head, body, service, operation, json_protocol=True)
    query = parse_qs(body.decode(errors="replace"))
    operation = query.get("Action", ["?"])[0]
    version = query.get("Version", [""])[0]
    service = "ec2" if version.startswith("2016-11-15") else "autoscaling"
    return Request(head, body, service, operation, json_protocol=False)


def _error(request: Request, kind: str) -> bytes:
    if kind == "throttle":
        status, code = 400, THROTTLE_CODES.get(request.service, "ThrottlingException")
        message = "Rate exceeded"
    elif kind == "denied":
        status = 400 if request.json_protocol else 403
        code = DENIED_CODES.get(request.service, "AccessDeniedException")
        message = (
            f"User: arn:aws:sts::123456789012:assumed-role/scaler/task is not authorized to "
            f"perform: {request.service}:{request.operation}"
        )
    else:
        status, code, message = 500, "InternalError", "We encountered an internal error."
    if request.json_protocol:
        body = json.dumps({"__type": code, "message": message}).encode()
        kind_header = b"application/x-amz-json-1.0"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        kind_header = b"text/xml"
    reason = {400: b"Bad Request", 403: b"Forbidden"}.get(status, b"Internal Server Error")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"x-amzn-RequestId: fault\r\nConnection: keep-alive\r\n\r\n"
        % (status, reason, kind_header, len(body))
    ) + body


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [ln for ln in lines if ln.split(b":", 1)[0].strip().lower() != name.lower()]
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    lines = _without_header(head, name).rstrip(b"\r\n").split(b"\r\n")
    return b"\r\n".join([*lines, name + b": " + value]) + b"\r\n\r\n"
