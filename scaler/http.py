"""One HTTP port: ``/metrics`` for Prometheus, ``/healthz`` for liveness, ``/readyz`` for readiness.

- ``/healthz`` answers 200 while the intake loop keeps ticking, 503 once it has not for
  ``SCALER_STUCK_AFTER`` seconds (a wedged loop should be restarted by ECS).
- ``/readyz`` answers 200 when AWS is reachable and the queue readable (a cheap
  ``GetQueueAttributes``), 503 with the reason otherwise. The answer is cached for a few seconds so
  probes cannot become a source of AWS calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from scaler.clock import Clock
from scaler.metrics import Metrics

log = logging.getLogger(__name__)

READY_CACHE_SECONDS = 5.0

# () -> None if ready, else a short reason
ReadinessProbe = Callable[[], Awaitable[str | None]]


@dataclass
class Health:
    """What the health endpoints look at."""

    clock: Clock
    stuck_after: float
    last_tick: Callable[[], float]
    probe: ReadinessProbe
    _ready_at: float = -1e18
    _ready_reason: str | None = "not checked yet"

    def alive(self) -> str | None:
        idle = self.clock.monotonic() - self.last_tick()
        if idle > self.stuck_after:
            return f"intake loop has not ticked for {idle:.0f}s"
        return None

    async def ready(self) -> str | None:
        now = self.clock.monotonic()
        if now - self._ready_at > READY_CACHE_SECONDS:
            try:
                self._ready_reason = await self.probe()
            except Exception as exc:
                self._ready_reason = f"probe failed: {exc!r}"
            self._ready_at = now
        return self._ready_reason


def _status(reason: str | None) -> web.Response:
    body = {"status": "ok"} if reason is None else {"status": "fail", "reason": reason}
    return web.json_response(body, status=200 if reason is None else 503, dumps=json.dumps)


def build_app(metrics: Metrics, health: Health) -> web.Application:
    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return _status(health.alive())

    async def readyz(_: web.Request) -> web.Response:
        return _status(await health.ready())

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
