"""One HTTP port: ``/metrics`` for Prometheus, ``/healthz`` for liveness, ``/readyz`` for readiness.

Both probes answer from memory, at once: neither awaits AWS in the request, so a slow, throttling
or unreachable AWS never makes a probe hang.

- ``/healthz`` answers 200 while the intake loop keeps ticking (and while the scaler is still
  starting: start-up has its own deadline, ``SCALER_STARTUP_TIMEOUT``), 503 once the loop has not
  ticked for ``SCALER_STUCK_AFTER`` seconds (a wedged loop should be restarted by ECS).
- ``/readyz`` reports the last readiness check: ``{"status": "ok" | "fail", "reason": ...,
  "checked_seconds_ago": ...}``, 200 or 503. While starting, the check is start-up's own (what
  could not be reached); once running, :meth:`Health.watch` checks in the background every few
  seconds (a cheap ``GetQueueAttributes``, cut off after a strict timeout), so probes cannot
  become a source of AWS calls. A result too old to trust counts as a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from scaler.clock import Clock
from scaler.metrics import Metrics

log = logging.getLogger(__name__)

# seconds between background readiness checks (each reads both queues' attributes: at 5 s they
# were a third of the scaler's AWS calls in a quiet cluster)
READY_INTERVAL = 15.0
READY_TIMEOUT = 2.0  # a check that takes longer has failed
READY_STALE = 45.0  # a result older than this (three intervals) is not trusted

# () -> None if ready, else a short reason
ReadinessProbe = Callable[[], Awaitable[str | None]]
# an exception a probe raised (or the TimeoutError of one cut off) -> the reason to report, or
# None to report the exception as it is
Describe = Callable[[BaseException], str | None]


class Health:
    """What the health endpoints report: the intake's liveness and the last readiness check."""

    def __init__(self, clock: Clock, stuck_after: float) -> None:
        self.clock = clock
        self.stuck_after = stuck_after
        self.last_tick: Callable[[], float] | None = None  # set once the intake runs
        self._reason: str | None = "starting: not checked yet"
        self._checked_at: float | None = None

    def alive(self) -> str | None:
        if self.last_tick is None:
            return None
        idle = self.clock.monotonic() - self.last_tick()
        if idle > self.stuck_after:
            return f"intake loop has not ticked for {idle:.0f}s"
        return None

    def record(self, reason: str | None) -> None:
        """The outcome of a readiness check made now: None if ready, else why not."""
        self._reason = reason
        self._checked_at = self.clock.monotonic()

    def readiness(self) -> tuple[str | None, float | None]:
        """(None if ready else the reason, seconds since the last check or None if never)."""
        if self._checked_at is None:
            return self._reason, None
        age = self.clock.monotonic() - self._checked_at
        if self._reason is None and age > READY_STALE:
            return f"readiness not checked for {age:.0f}s", age
        return self._reason, age

    async def watch(
        self,
        probe: ReadinessProbe,
        describe: Describe,
        stop: asyncio.Event,
        *,
        interval: float = READY_INTERVAL,
        limit: float = READY_TIMEOUT,
    ) -> None:
        """Check readiness with ``probe`` every ``interval`` seconds until ``stop`` is set; a
        check that takes more than ``limit`` seconds has failed."""
        while not stop.is_set():
            self.record(await _check(probe, describe, limit))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


async def _check(probe: ReadinessProbe, describe: Describe, limit: float) -> str | None:
    try:
        async with asyncio.timeout(limit):
            return await probe()
    except TimeoutError as exc:
        return describe(exc) or f"the readiness check got no answer from AWS within {limit:g}s"
    except Exception as exc:
        return describe(exc) or f"readiness check failed: {exc!r}"


def _status(reason: str | None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"status": "ok"} if reason is None else {"status": "fail"}
    if reason is not None:
        body["reason"] = reason
    body.update(extra)
    return web.json_response(body, status=200 if reason is None else 503, dumps=json.dumps)


def build_app(metrics: Metrics, health: Health) -> web.Application:
    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return _status(health.alive())

    async def readyz(_: web.Request) -> web.Response:
        reason, age = health.readiness()
        return _status(reason, checked_seconds_ago=None if age is None else round(age, 1))

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    """The aiohttp server on ``host:port``; ``port`` 0 binds a free port, exposed as ``.port``."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._requested = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("serving /metrics, /healthz, /readyz", extra={"port": self.port})

    async def stop(self) -> None:
        await self._runner.cleanup()
