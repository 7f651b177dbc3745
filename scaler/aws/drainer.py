"""Set container instances to DRAINING in batches, and deregister the ones that are gone.

``UpdateContainerInstancesState`` takes 10 container instances a call and shares ECS's modify
bucket with RunTask and StopTask. :class:`Drainer` gathers drain requests for
``SCALER_DRAIN_BATCH_WINDOW`` seconds (or until 10 wait) into one call, so a burst of N warnings
costs about N/10 calls. A failure entry ``MISSING`` means the instance is no longer registered:
nothing is left to drain, which counts as done.

Drains are urgent: the drainer is given the urgent ECS client (its own botocore retries, the one
retry layer: see :mod:`scaler.aws.clients`) and holds the :class:`PriorityGate` from the moment a
drain is asked for until its answer, so background ECS reads wait meanwhile.

In dry-run nothing is sent: every action is logged and counted with outcome ``dry_run``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from scaler.aws.batcher import Batcher
from scaler.aws.clients import error_code
from scaler.aws.concurrency import PriorityGate
from scaler.aws.ecs import InstanceDirectory
from scaler.clock import Clock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance

log = logging.getLogger(__name__)

DRAIN_BATCH = 10
GONE_REASONS = frozenset({"MISSING", "INACTIVE"})
DEREGISTER_GONE_CODES = frozenset({"ClientException", "InvalidParameterException"})


def _already_gone(exc: BaseException) -> bool:
    """ECS's answer to deregistering a container instance that is not registered any more."""
    message = str(exc).lower()
    return error_code(exc) in DEREGISTER_GONE_CODES and (
        "not found" in message or "inactive" in message or "does not exist" in message
    )


class DrainFailed(RuntimeError):
    """ECS refused to drain a container instance (the failure entry's reason)."""


class Drainer:
    def __init__(
        self,
        ecs: Any,
        cluster: str,
        directory: InstanceDirectory,
        metrics: Metrics,
        clock: Clock,
        *,
        dry_run: bool = False,
        window: float = 0.25,
        gate: PriorityGate | None = None,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._directory = directory
        self._metrics = metrics
        self._clock = clock
        self._dry_run = dry_run
        self._gate = gate or PriorityGate()
        # arn -> (reason, EC2 instance id) of the first request for it in the open batch
        self._requests: dict[str, tuple[str, str]] = {}
        self._batcher: Batcher[str, str] = Batcher(self._flush, max_size=DRAIN_BATCH, window=window)

    async def drain(
        self, instance: ContainerInstance, reason: str, since: datetime | None = None
    ) -> str:
        """Drain ``instance``; returns the outcome (ok, already, gone, dry_run)."""
        if instance.draining:
            self._count("drain", reason, "already")
            return "already"
        async with self._gate.urgent():
            self._requests.setdefault(instance.arn, (reason, instance.ec2_instance_id))
            outcome = await self._batcher.submit(instance.arn)
        if outcome == "ok":
            self._directory.update(replace(instance, status="DRAINING", version=0))
        elif outcome == "gone":
            self._directory.forget(instance.ec2_instance_id)
        if since is not None and outcome == "ok":
            latency = max(0.0, (self._clock.now() - since).total_seconds())
            self._metrics.drain_latency.labels(reason).observe(latency)
        return outcome

    async def close(self) -> None:
        await self._batcher.close()

    async def _flush(self, arns: Sequence[str]) -> dict[str, str | BaseException]:
        requests = {arn: self._requests.pop(arn, ("unknown", "")) for arn in arns}
        if self._dry_run:
            for arn, (reason, iid) in requests.items():
                log.info(
                    "dry run: would drain",
                    extra={"container_instance": arn, "instance_id": iid, "reason": reason},
                )
                self._count("drain", reason, "dry_run")
            return dict.fromkeys(arns, "dry_run")
        response = await self._update(arns)
        self._metrics.drain_batch_size.observe(len(arns))
        failed = {
            f.get("arn", ""): f.get("reason", "UNKNOWN") for f in response.get("failures", [])
        }
        return {arn: self._result(arn, *requests[arn], failed.get(arn)) for arn in arns}

    async def _update(self, arns: Sequence[str]) -> dict[str, Any]:
        result: dict[str, Any] = await self._ecs.update_container_instances_state(
            cluster=self._cluster, containerInstances=list(arns), status="DRAINING"
        )
        return result

    def _result(
        self, arn: str, reason: str, instance_id: str, failure: str | None
    ) -> str | BaseException:
        if failure is None:
            self._count("drain", reason, "ok")
            self._metrics.drained_instances.labels(reason).inc()
            log.info(
                "drained",
                extra={"container_instance": arn, "instance_id": instance_id, "reason": reason},
            )
            return "ok"
        if failure in GONE_REASONS:
            self._count("drain", reason, "gone")
            return "gone"
        self._count("drain", reason, "failed")
        return DrainFailed(f"{arn}: {failure}")

    def _count(self, action: str, reason: str, outcome: str) -> None:
        self._metrics.actions.labels(action, reason, outcome).inc()

    async def deregister(self, instance: ContainerInstance, reason: str) -> str:
        """Deregister a container instance whose EC2 instance is gone (force: its tasks too)."""
        if self._dry_run:
            log.info("dry run: would deregister", extra={"container_instance": instance.arn})
            self._count("deregister", reason, "dry_run")
            return "dry_run"
        try:
            async with self._gate.urgent():
                await self._ecs.deregister_container_instance(
                    cluster=self._cluster, containerInstance=instance.arn, force=True
                )
        except Exception as exc:
            if not _already_gone(exc):
                self._count("deregister", reason, "failed")
                raise
            outcome = "gone"
        else:
            outcome = "ok"
            self._metrics.deregistered_instances.inc()
        self._directory.forget(instance.ec2_instance_id)
        self._count("deregister", reason, outcome)
        log.info("deregistered", extra={"container_instance": instance.arn, "outcome": outcome})
        return outcome
