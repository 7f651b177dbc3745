"""The capacity actuator in AWS: carries out capacity plans, in dry-run only logs and counts.

:class:`CapacityActuator` is the AWS :class:`~scaler.capacity.ports.Actuator`. It acts only with
absolute values: ``SetDesiredCapacity`` to a group's target, ``UpdateService`` to a companion's
desired count, so a retry or a second replica repeats a value instead of adding to it. A group's
target is what it holds live (the instances that survive and those leaving, which it still
counts) plus what the plan adds, never its desired capacity plus a count; a group that replaces a
lost instance by itself, as Auto Scaling does, is trimmed back to the plan
(:mod:`scaler.aws.replaced`). A template pool launches through EC2 Fleet
(:mod:`scaler.aws.templates`), which answers at once: what it could not launch is asked of other
template pools in the same cycle.

Evacuations are ``StopTask``; returning to spot tags an on-demand instance
``scaler:retiring=return_to_spot``, drains it and, once it holds no task,
``TerminateInstanceInAutoScalingGroup`` with the desired capacity decremented. Nothing is retired
below a group's MinSize (Auto Scaling refuses to decrement the desired capacity below it), nor in
a way that unbalances a group's AZs (:mod:`scaler.capacity.observed`).

A call Auto Scaling or EC2 refuses (:class:`Refusals`: a ``SetDesiredCapacity``, a terminate) is
asked again only after ``REFUSAL_COOLDOWN``, ``MAX_REFUSALS`` times at most. Every call that
changes something is made only while this replica holds the leader lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from scaler.aws.clients import AwsClients, error_code
from scaler.aws.drainer import Drainer
from scaler.aws.lease import Always
from scaler.aws.replaced import Replacements
from scaler.aws.retiring import RETIRING, RETURN_TO_SPOT, SURPLUS
from scaler.aws.tasks import is_empty
from scaler.aws.templates import TemplatePools, new_token
from scaler.capacity import LOGGER
from scaler.capacity.observed import Observed, balanced, spare
from scaler.capacity.ports import Leader
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.capacity import CapacityPlan
from scaler.settings import Settings

log = logging.getLogger(LOGGER)


class CapacityActuator:
    """Carries out a plan; in dry-run it only logs and counts."""

    def __init__(
        self,
        aws: AwsClients,
        settings: Settings,
        drainer: Drainer,
        metrics: Metrics,
        templates: TemplatePools,
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._drainer = drainer
        self._metrics = metrics
        self.templates = templates  # the reader's: one memory of template-pool launches
        self.leader: Leader = Always()  # checked before every call that changes something
        self.asked: dict[str, tuple[int, float]] = {}  # group -> (desired we set, when)
        self.shortfalls: dict[str, float] = {}  # template pool -> when EC2 Fleet came up short
        self.acted = 0  # calls made that changed something (not in dry-run)
        self._refusals = Refusals(TERMINATE_ADVICE)
        self._desired_refusals = Refusals(DESIRED_ADVICE)  # SetDesiredCapacity, by group
        self._ec2_refusals = Refusals(EC2_TERMINATE_ADVICE, EC2_REFUSALS)  # TerminateInstances
        self._kept: set[str] = set()  # drained instances kept at their group's MinSize
        self.replacements = Replacements()  # what groups replace by themselves

    async def apply(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        pools = {p.name: p for p in observed.snapshot.pools}
        for name, count in plan.launches(pools).items():
            others = plan.alternatives.get(name, ())
            await self.grow(name, count, observed, now, plan.cause(name), others)
        current = {s.overflow: s.overflow_desired for s in observed.snapshot.services if s.overflow}
        for companion, desired in plan.overflow_targets.items():
            if current.get(companion) != desired:
                await self._act(
                    "overflow",
                    companion,
                    lambda c=companion, d=desired: self._aws.ecs.update_service(
                        cluster=self._settings.cluster, service=c, desiredCount=d
                    ),
                )
        for service, node in plan.evacuate:
            for arn in observed.tasks.get((service, node), []):
                await self._act(
                    "evacuate",
                    service,
                    lambda a=arn: self._aws.ecs.stop_task(
                        cluster=self._settings.cluster,
                        task=a,
                        reason="scaler: evacuated before the spot notice ends",
                    ),
                )
        await self._release(plan.release, observed)

    async def grow(
        self,
        name: str,
        count: int,
        observed: Observed,
        now: float,
        reason: str,
        alternatives: tuple[str, ...] = (),
    ) -> int:
        """Raise a group's desired capacity so that ``count`` more instances come than it has
        live now (within its MaxSize): the absolute target is its live instances, those that
        survive and those leaving that it still counts (so the replacement of an instance under
        a spot notice launches now), plus ``count``. A group that owes instances already (its
        desired capacity above that) is not raised (a group out of capacity is not raised again
        and again). How many were added (0 in dry-run, on failure, when refused lately, or when
        enough is owed already).

        A template pool's EC2 Fleet answers at once: what it could not launch is asked of the
        template pools among ``alternatives`` in turn, in the same cycle (each shortfall marks
        its pool out of capacity). An Auto Scaling group's shortfall shows only after
        ``LAUNCH_GRACE``, so its alternatives are left to the plans that follow."""
        if name in self.templates:
            launched = 0
            for pool in (name, *(a for a in alternatives if a in self.templates)):
                launched += await self._launch(pool, count - launched, observed, now, reason)
                if launched >= count or self._settings.dry_run:
                    break
            return launched
        before = observed.desired.get(name, 0)
        target = min(observed.live.get(name, 0) + count, observed.max_size.get(name, 0))
        if target <= before or not await self._set_desired(name, target, now):
            return 0
        self.asked[name] = (target, now)
        observed.desired[name] = target
        self._metrics.capacity_changes.labels("add", reason).inc(target - before)
        return target - before

    async def _set_desired(self, name: str, target: int, now: float) -> bool:
        """``SetDesiredCapacity``; one Auto Scaling refused is asked again only after
        ``REFUSAL_COOLDOWN``, and at most ``MAX_REFUSALS`` times."""
        if self._desired_refusals.cooling(name, now):
            return False
        return await self._act(
            "set_desired",
            name,
            lambda: self._aws.autoscaling.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=target, HonorCooldown=False
            ),
            lambda exc: self._desired_refusals.note(name, exc, now),
        )

    async def give_back(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        """Lower the desired capacity of the groups that lost instances (counted in it while
        they were leaving) and did not replace them within the grace, down to their live
        instances at the lowest (so Auto Scaling terminates nothing), nor below MinSize; not
        for a group the plan grows. What a group still owes otherwise (a launch asked for and not
        started) stays asked for."""
        pools = {p.name: p for p in observed.snapshot.pools}
        growing = plan.launches(pools)
        for name in sorted(observed.min_size):
            if name in growing:
                continue
            desired, live = observed.desired.get(name, 0), observed.live.get(name, 0)
            lower = min(self.replacements.unreplaced(name, now), desired - live)
            target = max(desired - lower, observed.min_size[name])
            if target >= desired:
                continue
            if await self._set_desired(name, target, now):
                self.replacements.given_back(name, desired - target)
                observed.desired[name] = target
                if name in self.asked:  # what it was asked for, less the lost given back
                    asked, since = self.asked[name]
                    self.asked[name] = (asked - (desired - target), since)
                self._metrics.capacity_changes.labels("remove", SURPLUS).inc(desired - target)
                log.info(
                    "lost instances not replaced by their group: desired capacity lowered",
                    extra={"group": name, "desired": target},
                )

    async def _launch(
        self, name: str, count: int, observed: Observed, now: float, reason: str
    ) -> int:
        """Launch up to ``count`` instances in a template pool (within its maximum size);
        how many EC2 Fleet launched (a shortfall marks the pool out of capacity)."""
        before = observed.desired.get(name, 0)
        want = min(before + count, observed.max_size.get(name, 0)) - before
        token = new_token()  # one per launch: retries of this call get its answer
        launched = 0

        async def create() -> None:
            nonlocal launched
            launched = await self.templates.launch(name, want, token, now)

        if want <= 0:
            return 0
        if not await self._act("create_fleet", name, create):
            if not self._settings.dry_run:
                self.shortfalls[name] = now  # refused: try other pools for a while
            return 0
        if launched < want:
            self.shortfalls[name] = now
        observed.desired[name] = before + launched
        self._metrics.capacity_changes.labels("add", reason).inc(launched)
        return launched

    async def retire(self, node: str, pool: str, reason: str, observed: Observed) -> bool:
        """Terminate a drained instance, its group's desired capacity decremented (a template
        pool's instance is just terminated). Never asked below the group's MinSize, which Auto
        Scaling would refuse; a refused call is tried again only after ``REFUSAL_COOLDOWN``,
        and at most ``MAX_REFUSALS`` times."""
        if pool in self.templates:
            return await self.terminate(node, reason, observed.snapshot.now)
        if observed.desired.get(pool, 0) - 1 < observed.min_size.get(pool, 0):
            if node not in self._kept:  # said once, not every cycle
                self._kept.add(node)
                log.warning(
                    "group at its MinSize: drained instance kept until the minimum allows",
                    extra={"group": pool, "instance": node, "min_size": observed.min_size[pool]},
                )
            return False
        if self._refusals.cooling(node, observed.snapshot.now):
            return False
        done = await self._act(
            "terminate",
            pool,
            lambda: self._aws.autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=node, ShouldDecrementDesiredCapacity=True
            ),
            lambda exc: self._refusals.note(node, exc, observed.snapshot.now),
        )
        if done:
            observed.desired[pool] = observed.desired.get(pool, 0) - 1
            self.replacements.let_go.add(node)  # gone with its desired: not to be replaced
            self._metrics.capacity_changes.labels("remove", reason).inc()
            if reason == RETURN_TO_SPOT:
                self._metrics.reverts.inc()
        return done

    async def lower_fleet(self, fleet: str, target: float) -> bool:
        """Lower a Spot Fleet's target capacity without letting it stop an instance itself."""
        return await self._act(
            "lower_fleet",
            fleet,
            lambda: self._aws.ec2.modify_spot_fleet_request(
                SpotFleetRequestId=fleet,
                TargetCapacity=int(target),
                ExcessCapacityTerminationPolicy="noTermination",
            ),
        )

    async def terminate(self, node: str, reason: str, now: float) -> bool:
        """Terminate an instance no Auto Scaling group owns (a Spot Fleet's, a template
        pool's); one EC2 refused is asked again only after ``REFUSAL_COOLDOWN``, and at most
        ``MAX_REFUSALS`` times (``now``: the cycle's time)."""
        if self._ec2_refusals.cooling(node, now):
            return False
        done = await self._act(
            "terminate",
            node,
            lambda: self._aws.ec2.terminate_instances(InstanceIds=[node]),
            lambda exc: self._ec2_refusals.note(node, exc, now),
        )
        if done:
            self._metrics.capacity_changes.labels("remove", reason).inc()
        return done

    async def empty(self, ci: ContainerInstance | None) -> bool:
        """Whether a drained instance holds no task of any status (a task ECS is stopping still
        runs, out of its counts) and may be terminated; False when that cannot be read."""
        if ci is None:
            return False
        try:
            return await is_empty(self._aws.ecs, self._settings.cluster, ci.arn)
        except Exception as exc:
            log.warning(
                "tasks not listed: instance kept this cycle",
                extra={"instance": ci.ec2_instance_id, "error": repr(exc)},
            )
            return False

    async def mark_retiring(self, node: str, reason: str) -> bool:
        """Tag an instance the scaler is about to drain by its own choice, so that only such
        instances are ever terminated by it (one drained by hand never is)."""
        return await self._act(
            "mark_retiring",
            node,
            lambda: self._aws.ec2.create_tags(
                Resources=[node], Tags=[{"Key": RETIRING, "Value": reason}]
            ),
        )

    async def drain(self, ci: ContainerInstance, reason: str) -> bool:
        """Drain an instance by the scaler's own choice; False if that failed."""
        if not self._leading("drain", ci.ec2_instance_id):
            return False
        try:
            return await self._drainer.drain(ci, reason) in ("ok", "already", "dry_run")
        except Exception as exc:
            log.error("drain failed", extra={"instance": ci.ec2_instance_id, "error": repr(exc)})
            return False

    async def _release(self, release: tuple[str, ...], observed: Observed) -> None:
        """Tag (``scaler:retiring=return_to_spot``) and drain the on-demand instances the plan
        gives back. The capacity cycle terminates them once empty, like every instance the
        scaler retires, and only those it tagged: one drained by hand stays."""
        for node in self.removable(observed, release):
            ci = observed.instances.get(node)
            if ci is not None and await self.mark_retiring(node, RETURN_TO_SPOT):
                await self.drain(ci, "revert_to_spot")

    def removable(self, observed: Observed, nodes: Iterable[str]) -> list[str]:
        """Those of ``nodes`` the scaler may drain by its own choice: their groups can spare
        them (MinSize) and keep their AZs balanced (AZRebalance)."""
        return balanced(observed, spare(observed, nodes))

    async def _act(
        self,
        action: str,
        target: str,
        call: Any,
        failed: Callable[[Exception], None] = lambda _: None,
    ) -> bool:
        """Make one call (or, in dry-run, say it); True if it was made and succeeded (else
        ``failed`` is told why). Made only while this replica holds the leader lease, checked
        before the call (botocore's retries, the only ones, follow within moments)."""
        if self._settings.dry_run:
            log.info(f"dry run: would {action}", extra={"target": target})
            self._metrics.actions.labels(action, target, "dry_run").inc()
            return False

        if not self._leading(action, target):
            return False
        try:
            await call()  # botocore's retries are the only ones (see scaler.aws.clients)
        except Exception as exc:
            self._metrics.actions.labels(action, target, "failed").inc()
            log.error(f"{action} failed", extra={"target": target, "error": repr(exc)})
            failed(exc)
            return False
        self._metrics.actions.labels(action, target, "ok").inc()
        log.info(action, extra={"target": target})
        self.acted += 1
        return True

    def _leading(self, action: str, target: str) -> bool:
        """Whether this replica still holds the leader lease; a change it may no longer make
        is counted (outcome ``not_leader``) and left to the next leader."""
        if self.leader.holds():
            return True
        log.warning(f"not leading: {action} left to the leader", extra={"target": target})
        self._metrics.actions.labels(action, target, "not_leader").inc()
        return False


REFUSAL_COOLDOWN = 600.0  # seconds before a terminate Auto Scaling refused is asked again
MAX_REFUSALS = 3  # refusals after which an instance is no longer asked for (until a restart)


TERMINATE_ADVICE = (
    "terminate refused too often: instance left drained; lower the group's MinSize "
    "or terminate it by hand"
)
EC2_TERMINATE_ADVICE = (
    "terminate refused too often: instance left drained; check its termination protection "
    "and the scaler's permissions, or terminate it by hand"
)
EC2_REFUSALS = frozenset({"OperationNotPermitted", "UnauthorizedOperation"})
DESIRED_ADVICE = (
    "desired capacity refused too often: group left as it is; check its MinSize and MaxSize "
    "(aws autoscaling describe-auto-scaling-groups) and restart the scaler"
)


class Refusals:
    """Calls refused (Auto Scaling's ``ValidationError``: its MinSize, say), by what they were
    about (an instance, a group): not asked again within ``REFUSAL_COOLDOWN``, nor after
    ``MAX_REFUSALS`` (``advice`` logged then)."""

    def __init__(
        self, advice: str = TERMINATE_ADVICE, codes: frozenset[str] = frozenset({"ValidationError"})
    ) -> None:
        self._advice = advice
        self._codes = codes  # the error codes that are refusals (others are tried again)
        self._seen: dict[str, tuple[int, float]] = {}  # instance -> (refusals, last)

    def note(self, node: str, exc: Exception, now: float) -> None:
        if error_code(exc) not in self._codes:
            return  # not a refusal: tried again next cycle
        count = self._seen.get(node, (0, now))[0] + 1
        self._seen[node] = (count, now)
        if count >= MAX_REFUSALS:
            log.error(self._advice, extra={"target": node, "refusals": count})

    def cooling(self, node: str, now: float) -> bool:
        seen = self._seen.get(node)
        return seen is not None and (seen[0] >= MAX_REFUSALS or now - seen[1] < REFUSAL_COOLDOWN)
