"""Wiring: the pieces of a running scaler and their lifetime.

:class:`Scaler` opens the AWS clients, serves the HTTP endpoints and runs the intake until its
``stop`` event is set; ``scaler run`` sets that event on SIGTERM or SIGINT, ``scaler demo`` when its
scripted burst has been handled. Shutdown order: stop receiving, let in-flight work finish (or
release it to the queue), then close the HTTP server and the clients.

Start-up serves the endpoints first (a port that cannot be bound is a configuration problem),
then checks what the settings name: the queue, the cluster, the lease table, the capacity pools.
While AWS cannot be reached (or throttles, or fails) it tries again with jittered exponential
backoff for up to ``SCALER_STARTUP_TIMEOUT`` seconds, /readyz saying what stands in the way;
anything retrying cannot fix (a missing cluster, an action the role may not take) ends start-up
at once with an :class:`~scaler.aws.errors.AwsFailure`, one line for the command line to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import signal
import socket
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from scaler.aws.advice import Advisor
from scaler.aws.budget_slots import BudgetSlots, DynamoSlots, Unshared
from scaler.aws.capacity_actuator import CapacityActuator
from scaler.aws.capacity_reader import CapacityReader
from scaler.aws.clients import AwsClients, AwsTarget, Instrument
from scaler.aws.consolidation import Consolidator
from scaler.aws.drain_gate import DrainGate
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.errors import AwsFailure, Context, Problem, cluster_missing, explain
from scaler.aws.intake import Intake
from scaler.aws.lease import Always, DynamoLease, Leadership
from scaler.aws.lifecycle import (
    AutoScalingLifecycle,
    ClusterGroups,
    LifecycleFollower,
    LifecyclePort,
)
from scaler.aws.migration import Migration
from scaler.aws.queue_depth import QueueDepth, dead_letter_url
from scaler.aws.rebalancer import RebalanceController
from scaler.aws.retry import Backoff
from scaler.aws.shared_notices import SharedNotices
from scaler.aws.surges import RollSurges
from scaler.aws.tasks import StandaloneRestarter, TaskInspector
from scaler.aws.undrain import DrainMarks, Reactivator
from scaler.aws.warning_surge import WarningSurge
from scaler.capacity.controller import CapacityController
from scaler.capacity.policy import policy_from
from scaler.clock import Clock, SystemClock
from scaler.guard import GuardRails
from scaler.handler import EventHandler, Workers
from scaler.http import Describe, Health, HttpServer, ReadinessProbe, build_app
from scaler.lease import LeaseTerms
from scaler.metrics import Metrics
from scaler.plan.drain import DrainPolicy
from scaler.plan.roll import RollPolicy
from scaler.replacement import (
    CapacityReplacement,
    NoReplacement,
    ReplacementSource,
    SharedReplacement,
)
from scaler.settings import ConfigError, Settings

log = logging.getLogger(__name__)

DEFAULT_QUEUE_VISIBILITY = 30
T = TypeVar("T")
# what start-up hands to the running scaler: queue visibility timeout, workers, capacity
Started = tuple[int, Workers, CapacityController | None]

STARTUP_RETRY_BASE = 1.0  # seconds: the first wait before trying AWS again at start
STARTUP_RETRY_CAP = 15.0  # seconds: the longest wait between tries
STARTUP_TRY = 10.0  # seconds the first try may take (botocore retries inside it), then 20...


class Scaler:
    """A running scaler: AWS clients, HTTP endpoints and the intake loop."""

    def __init__(
        self,
        settings: Settings,
        target: AwsTarget,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        *,
        replacements: ReplacementSource | None = None,
        lifecycle: LifecyclePort | None = None,
        instrument: Instrument | None = None,
        serve_http: bool = True,
    ) -> None:
        if settings.queue_url is None:
            raise ConfigError(["SCALER_QUEUE_URL: required by `scaler run` but not set"])
        self.settings = settings
        self.target = target
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.queue_url = str(settings.queue_url)
        self.intake: Intake | None = None
        self.http: HttpServer | None = None
        self.started = asyncio.Event()
        # Seams for capacity and Auto Scaling (tests inject fakes; moto lacks lifecycle calls).
        self._replacements_given = replacements
        self._replacements = replacements or NoReplacement()
        self.capacity: CapacityController | None = None
        self.context = Context(
            region=target.region,
            endpoint_url=target.endpoint_url,
            cluster=settings.cluster,
            queue_url=self.queue_url,
            lease_table=settings.lease_table,
        )
        self._lifecycle = lifecycle
        self._instrument = instrument
        self._serve_http = serve_http  # False in the simulated world, which has no sockets
        self._shared: SharedNotices | None = None  # with a lease table and a controller
        self._redrive: str | None = None  # the queue's RedrivePolicy, read at start-up
        # this process among the replicas: in containers the pid is often 1 and hostnames repeat
        self._me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        queue_name = self.queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.metrics.describe(settings.cluster_name, queue_name, dry_run=settings.dry_run)

    async def run(self, stop: asyncio.Event) -> None:
        health = Health(self.clock, self.settings.stuck_after)
        if self._serve_http:
            self.http = HttpServer(
                build_app(self.metrics, health),
                self.settings.metrics_host,
                self.settings.metrics_port,
            )
            await self._serve(self.http)
        try:
            async with AwsClients(self.target, self.metrics, self._instrument) as aws:
                ready = await self._start(aws, health, stop)
                if ready is not None:
                    await self._operate(aws, health, stop, *ready)
        finally:
            if self.http is not None:
                await self.http.stop()
        log.info("scaler stopped")

    async def _serve(self, http: HttpServer) -> None:
        """Start serving the endpoints; a port that cannot be bound is a configuration problem."""
        s = self.settings
        try:
            await http.start()
        except OSError as exc:
            await http.stop()
            raise ConfigError([_bind_problem(exc, s.metrics_host, s.metrics_port)]) from None

    async def _start(self, aws: AwsClients, health: Health, stop: asyncio.Event) -> Started | None:
        """Check what the settings name, retrying for up to SCALER_STARTUP_TIMEOUT while AWS
        cannot be reached (jittered exponential backoff; /readyz says why meanwhile, as soon
        as a call fails).

        Returns the queue's visibility timeout, the workers and the capacity controller, or None
        if ``stop`` was set first. Raises :class:`AwsFailure` for a problem retrying cannot
        solve, or once the time is up.
        """
        describe = self._describer(aws)
        aws.on_failure = lambda exc: health.record(f"starting: {describe(exc) or repr(exc)}")
        try:
            return await self._try_start(aws, health, stop)
        finally:
            aws.on_failure = None

    async def _try_start(
        self, aws: AwsClients, health: Health, stop: asyncio.Event
    ) -> Started | None:
        limit = self.settings.startup_timeout
        deadline = self.clock.monotonic() + limit
        backoff = Backoff(base=STARTUP_RETRY_BASE, cap=STARTUP_RETRY_CAP)
        for attempt in itertools.count():
            left = deadline - self.clock.monotonic()
            # a try may take longer each time: a slow but working start-up gets through
            outcome = await _until_stopped(
                self._attempt(aws, max(min(left, STARTUP_TRY * (attempt + 1)), 1.0)), stop
            )
            if not isinstance(outcome, Problem):
                return outcome  # started, or stopped (None)
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise AwsFailure(
                    Problem(
                        f"{outcome.what} (tried for {limit:g}s, SCALER_STARTUP_TIMEOUT)",
                        outcome.todo,
                        outcome.status,
                    )
                )
            health.record(f"starting: {outcome.what}")
            wait = min(backoff.delay(attempt), left)
            log.warning(
                "AWS not reachable at start; retrying",
                extra={"problem": outcome.what, "retry_in_s": round(wait, 2)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return None
        raise AssertionError("unreachable")

    async def _attempt(self, aws: AwsClients, limit: float) -> Started | Problem:
        """One try at start-up, cut off after ``limit`` seconds: what it started, or the
        problem that trying again may solve; any other problem is raised."""
        aws.last_failure = None
        try:
            async with asyncio.timeout(limit):
                visibility = await self._check_targets(aws)
                workers = self._workers(aws)
                return visibility, workers, await self._capacity(aws, workers)
        except Exception as exc:
            # cut off by the time limit: say what the calls were struggling with, if anything
            cause = aws.last_failure if isinstance(exc, TimeoutError) else None
            problem = explain(cause or exc, self.context)
            if problem is None:
                raise
            if not problem.transient:
                raise AwsFailure(problem) from None
            return problem

    async def _operate(
        self,
        aws: AwsClients,
        health: Health,
        stop: asyncio.Event,
        queue_visibility: int,
        workers: Workers,
        controller: CapacityController | None,
    ) -> None:
        """Run the intake and the background loops until ``stop``, then shut them down."""
        handler = EventHandler(
            self.settings.cluster,
            workers,
            DrainPolicy.from_settings(self.settings),
            self.clock,
            self.metrics,
        )
        intake = self.intake = Intake(
            aws.sqs,
            self.queue_url,
            handler,
            self.settings,
            self.metrics,
            self.clock,
            queue_visibility=queue_visibility,
        )
        health.last_tick = lambda: intake.last_tick
        depth = QueueDepth(aws.sqs, self.queue_url, self.metrics, self.clock, intake.oldest)
        depth.dead_letter_url = dead_letter_url(self.queue_url, self._redrive)
        health.record(None)  # start-up has just reached AWS
        self.started.set()
        log.info(
            "scaler started",
            extra={"cluster": self.settings.cluster, "dry_run": self.settings.dry_run},
        )
        guard = GuardRails(
            aws.ecs,
            self.settings.cluster,
            self.metrics.drain_risk_services,
            self.clock,
            interval=self.settings.guard_interval,
        )
        leader = self._leadership(aws)
        reactivator = self._reactivator(aws, workers)
        reactivator.leader = leader
        background = [
            asyncio.create_task(guard.run_forever(stop), name="guard-rails"),
            asyncio.create_task(leader.run_forever(stop), name="lease"),
            asyncio.create_task(reactivator.run_forever(stop), name="reactivation"),
            asyncio.create_task(
                health.watch(self._probe(aws, depth), self._describer(aws), stop), name="ready"
            ),
        ]
        if workers.warning_surge is not None:
            workers.warning_surge.leader = leader
            surges = workers.warning_surge.run_forever(stop)
            background.append(asyncio.create_task(surges, name="warning-surge"))
        if controller is not None:
            controller.leader = leader
            background.append(asyncio.create_task(controller.run_forever(stop), name="capacity"))
        if self.settings.task_rebalance:
            mover = RebalanceController(aws, self.settings, self.metrics, self.clock)
            mover.leader = leader
            background.append(asyncio.create_task(mover.run_forever(stop), name="rebalance"))
        if self.settings.advice:
            advisor = Advisor(aws, self.settings, self.metrics, self.clock)
            advisor.leader = leader
            background.append(asyncio.create_task(advisor.run_forever(stop), name="advice"))
        try:
            await intake.run(stop)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._shared is not None:
                await self._shared.close()
            await leader.give_up()  # only now that nothing it guarded still runs
            await workers.lifecycle.close()
            await workers.drainer.close()

    def _workers(self, aws: AwsClients) -> Workers:
        s, cluster = self.settings, self.settings.cluster
        # the directory answers "which container instance is this?" on the way to a drain (the
        # urgent client); its full refreshes for the capacity cycle and others are background
        directory = InstanceDirectory(
            aws.ecs, cluster, self.clock, s.instance_cache_ttl, urgent_ecs=aws.urgent_ecs
        )
        drainer = Drainer(
            aws.urgent_ecs,
            cluster,
            directory,
            self.metrics,
            self.clock,
            dry_run=s.dry_run,
            window=s.drain_batch_window,
            gate=aws.gate,
        )
        port = self._lifecycle or AutoScalingLifecycle(
            aws.urgent_autoscaling, gate=aws.gate, dry_run=s.dry_run
        )
        follower = LifecycleFollower(
            port,
            TaskInspector(aws.ecs, cluster),
            self.metrics,
            self.clock,
            poll=s.drain_poll,
            heartbeat=s.lifecycle_heartbeat,
            timeout=s.drain_timeout,
            dry_run=s.dry_run,
        )
        pools = (*s.spot_pools, *s.on_demand_pools)
        groups = ClusterGroups(aws.autoscaling, s.cluster_name, pools, self.clock)
        restarter = None
        if s.restart_standalone_tasks:
            restarter = StandaloneRestarter(
                aws.urgent_ecs, cluster, self.metrics, dry_run=s.dry_run
            )
        workers = Workers(
            directory, drainer, follower, self._replacements, restarter, groups=groups
        )
        workers.marks = DrainMarks(aws.urgent_ecs, cluster, directory, dry_run=s.dry_run)
        if s.warning_surge:
            workers.warning_surge = WarningSurge(
                RollSurges(aws, cluster, self.metrics, s.dry_run),
                aws.ecs,
                cluster,
                directory,
                self.clock,
                stop_time=s.warning_surge_stop_time,
                dry_run=s.dry_run,
                metrics=self.metrics,
            )
        workers.gate = DrainGate(
            directory,
            self.clock,
            share=s.disruption_budget,
            expire_after=s.undrain_after,
            poll=s.drain_poll,
            slots=self._budget_slots(aws),
            skew=s.lease_margin,
        )
        return workers

    def _budget_slots(self, aws: AwsClients) -> BudgetSlots:
        """With replicas (SCALER_LEASE_TABLE), the disruption budget's slots are shared in the
        lease table (:mod:`scaler.aws.budget_slots`); a slot lasts at most the drain timeout."""
        s = self.settings
        if s.lease_table is None:
            return Unshared()
        return DynamoSlots(aws.dynamodb, s.lease_table, s.cluster_name, self._me, s.drain_timeout)

    def _reactivator(self, aws: AwsClients, workers: Workers) -> Reactivator:
        """Undoes the scaler's drains on warnings that did not come true."""
        s = self.settings
        assert workers.marks is not None
        return Reactivator(
            aws.ecs,
            s.cluster,
            workers.directory,
            workers.board,
            workers.marks,
            self.metrics,
            self.clock,
            interval=min(60.0, max(0.2, s.undrain_after / 4)),
            dry_run=s.dry_run,
        )

    async def _capacity(self, aws: AwsClients, workers: Workers) -> CapacityController | None:
        """The capacity controller, if any pool or overflow service is configured."""
        s = self.settings
        pools = s.spot_pools or s.on_demand_pools or s.spot_templates or s.on_demand_templates
        if not (pools or s.overflow_services):
            log.info(
                "capacity top-up off: no SCALER_SPOT_POOLS, SCALER_ON_DEMAND_POOLS, "
                "SCALER_SPOT_TEMPLATES, SCALER_ON_DEMAND_TEMPLATES or SCALER_OVERFLOW_SERVICES "
                "configured"
            )
            return None
        reader = CapacityReader(aws, s, workers.directory, workers.board)
        await reader.validate()
        actuator = CapacityActuator(aws, s, workers.drainer, self.metrics, reader.templates)
        reader.acted = lambda: actuator.acted  # a full read after the scaler changed anything
        roll = (
            RollPolicy(s.disruption_budget, s.roll_per_hour, surge=s.roll_surge) if s.roll else None
        )
        migrate = RollPolicy(s.disruption_budget, s.migrate_per_hour)
        policy = policy_from(s)
        started = self.clock.now().timestamp()  # consolidation's first quiet period
        consolidator = (
            Consolidator(aws, s, policy, s.consolidate_interval, started)
            if s.consolidate and pools  # only the scaler's own groups are given back
            else None
        )
        controller = CapacityController(
            reader,
            actuator,
            workers.board,
            policy,
            self.metrics,
            s.capacity_interval,
            roll,
            consolidator,
            Migration(aws, s.migrate_spot_fleets, migrate) if s.migrate_spot_fleets else None,
            self.clock,
            RollSurges(aws, s.cluster, self.metrics, s.dry_run)
            if s.roll and s.roll_surge
            else None,
            scale_in_after=s.scale_in_after or None,
        )
        workers.drained = controller.wake.set
        controller.news = lambda: workers.heard  # news ends quiet cycles
        workers.pool_of = controller.lifetimes.pool_of
        if self._replacements_given is None:
            workers.replacements = CapacityReplacement(
                controller, workers.board, s.replacement_timeout, self.clock
            )
        if s.lease_table is not None:
            self._share(aws, s.lease_table, workers, controller)
        self.capacity = controller
        return controller

    def _share(
        self, aws: AwsClients, table: str, workers: Workers, controller: CapacityController
    ) -> None:
        """With replicas, notices and replacement requests reach the leader's controller
        through the lease table (:mod:`scaler.aws.shared_notices`)."""
        shared = self._shared = SharedNotices(
            aws.dynamodb, table, self.settings.cluster_name, self.clock
        )
        workers.share = shared.publish
        controller.shared = lambda board, now: shared.pull(board, now, controller)
        if isinstance(workers.replacements, CapacityReplacement):
            workers.replacements = SharedReplacement(
                workers.replacements,
                controller,
                shared,
                self.clock,
                self.settings.replacement_timeout,
                self.settings.drain_poll,
            )

    def _leadership(self, aws: AwsClients) -> Leadership:
        """The leader lease, when replicas share the cluster (SCALER_LEASE_TABLE)."""
        s = self.settings
        if s.lease_table is None:
            self.metrics.leader.set(1)
            return Always()
        terms = LeaseTerms(s.lease_duration, s.lease_margin)
        return DynamoLease(
            aws.dynamodb, s.lease_table, s.cluster_name, self._me, terms, self.clock, self.metrics
        )

    def _probe(self, aws: AwsClients, depth: QueueDepth) -> ReadinessProbe:
        async def probe() -> str | None:
            await depth.read()  # the queue answers: ready; its depth and age for the gauges
            aws.last_failure = None  # a failure from before is no cause of a later timeout
            return None

        return probe

    def _describer(self, aws: AwsClients) -> Describe:
        """What a failed readiness check reports: for a check cut off by its time limit, how
        the last failed attempt of any call since the last good check failed, if one did (a
        throttled client waits before it even sends)."""

        def describe(exc: BaseException) -> str | None:
            cause = aws.last_failure if isinstance(exc, TimeoutError) else exc
            problem = explain(cause, self.context) if cause is not None else None
            return problem.what if problem is not None else None

        return describe

    async def _check_targets(self, aws: AwsClients) -> int:
        """Refuse a queue, cluster or lease table that does not exist; warn about a queue
        without a DLQ. AWS errors propagate (:meth:`_start` tells them apart).

        Returns the queue's visibility timeout.
        """
        attrs = await aws.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
        )
        clusters = await aws.ecs.describe_clusters(clusters=[self.settings.cluster])
        if self.settings.lease_table is not None:
            await aws.dynamodb.describe_table(TableName=self.settings.lease_table)
        found = [c for c in clusters.get("clusters", []) if c.get("status") != "INACTIVE"]
        if not found:
            raise AwsFailure(cluster_missing(self.context))
        self._redrive = attrs.get("Attributes", {}).get("RedrivePolicy")
        if "RedrivePolicy" not in attrs.get("Attributes", {}):
            log.warning(
                "the queue has no redrive policy: malformed messages will be received again "
                "forever; give it a dead-letter queue"
            )
        return int(attrs["Attributes"].get("VisibilityTimeout", DEFAULT_QUEUE_VISIBILITY))


async def _until_stopped(call: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``await call``, or cancel it and return None as soon as ``stop`` is set."""
    task = asyncio.create_task(call)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


def _bind_problem(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"SCALER_METRICS_PORT: port {port} is already in use on {host}; stop what listens "
            "there or set SCALER_METRICS_PORT to a free port (0 picks one)"
        )
    return (
        f"SCALER_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror or exc}); set "
        "SCALER_METRICS_HOST to an address of this host and SCALER_METRICS_PORT to a free port"
    )


async def run_until_signalled(scaler: Scaler) -> None:
    """Run ``scaler`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, sig))
    await scaler.run(stop)


def _stopper(stop: asyncio.Event, sig: signal.Signals) -> Any:
    def handle() -> None:
        log.info("signal received: stopping", extra={"signal": sig.name})
        stop.set()

    return handle
