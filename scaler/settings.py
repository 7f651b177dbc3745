"""Operator settings, read from ``SCALER_*`` environment variables.

Every knob the scaler has lives here, with its type, default and a one-line description. The
description is what ``scaler config`` prints and what the settings table in docs/settings.md
shows, so a field without one is a bug (a test checks it). Validation happens once, at start-up:
a bad value is reported by the *environment variable name* that carries it, one line per
problem, and the process exits with status 2 before touching AWS.

The standard AWS variables (``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, the
credential chain) are not ours to rename: :class:`AwsEnv` reads them as they are.

No I/O happens here beyond reading the environment.
"""

from __future__ import annotations

import difflib
import os
import shlex
import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "SCALER_"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LoadSource(StrEnum):
    """Where the CPU load that rebalancing acts on comes from."""

    RESERVED = "reserved"
    MEASURED = "measured"


class RebalancePolicy(StrEnum):
    """What to do on an EC2 Instance Rebalance Recommendation."""

    IGNORE = "ignore"
    DRAIN = "drain"
    REPLACE_THEN_DRAIN = "replace-then-drain"


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# Lists come as comma-separated text, not JSON: NoDecode hands the raw string to a validator.
Names = Annotated[tuple[str, ...], NoDecode]
Pairs = Annotated[dict[str, str], NoDecode]


class Settings(BaseSettings):
    """All ``SCALER_*`` settings. Field order is the order ``scaler config`` prints."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    # -- identity ---------------------------------------------------------------------------
    cluster: str = Field(
        min_length=1,
        description="Name or ARN of the ECS cluster this scaler manages (required).",
    )
    queue_url: AnyHttpUrl | None = Field(
        default=None,
        description="URL of the SQS queue EventBridge delivers events to (required for `run`).",
    )
    dry_run: bool = Field(
        default=False,
        description="Log and count every action without changing anything in AWS.",
    )

    # -- observability ----------------------------------------------------------------------
    metrics_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description="TCP port serving /metrics, /healthz and /readyz (0 picks a free port).",
    )
    metrics_host: str = Field(
        default="0.0.0.0",
        description="Address the HTTP server binds to.",
    )
    log_level: LogLevel = Field(default=LogLevel.INFO, description="Log level.")
    log_format: LogFormat = Field(
        default=LogFormat.JSON,
        description="`json` (one object per line) or `text` (for humans).",
    )

    # -- intake -----------------------------------------------------------------------------
    concurrency: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Messages handled at once; the intake receives no more than this.",
    )
    visibility_timeout: int = Field(
        default=60,
        ge=5,
        le=43200,
        description="Seconds each extension hides a message that is still being handled.",
    )
    wait_time: int = Field(
        default=20,
        ge=0,
        le=20,
        description="SQS long-poll wait, in seconds.",
    )
    retry_delay: Seconds = Field(
        default=5.0,
        le=300,
        description="Seconds before a message whose work failed is received again "
        "(doubles with each receive, at most 300).",
    )
    dedup_ttl: Seconds = Field(
        default=3600.0,
        description="Seconds an event id is remembered so a redelivered event is handled once.",
    )
    shutdown_grace: Seconds = Field(
        default=20.0,
        le=25.0,
        description="Seconds in-flight messages may finish after SIGTERM before they are released.",
    )
    stuck_after: Seconds = Field(
        default=120.0,
        description="/healthz fails when the intake loop has not ticked for this many seconds.",
    )
    startup_timeout: Seconds = Field(
        default=120.0,
        description="`scaler run`: seconds to keep trying to reach AWS at start (with backoff; "
        "/readyz says why it is not ready meanwhile) before exiting with status 2.",
    )
    instance_cache_ttl: Seconds = Field(
        default=30.0,
        description="Seconds the map of EC2 instances to container instances is trusted.",
    )

    # -- drain --------------------------------------------------------------------------------
    drain_batch_window: float = Field(
        allow_inf_nan=False,
        default=0.25,
        ge=0,
        le=10,
        description="Seconds to gather drain requests into one call (10 instances per call).",
    )
    rebalance_policy: RebalancePolicy = Field(
        default=RebalancePolicy.DRAIN,
        description="On a rebalance recommendation: `ignore`, `drain`, or `replace-then-drain`.",
    )
    replacement_timeout: Seconds = Field(
        default=300.0,
        description="`replace-then-drain`: drain anyway if replacement capacity is not ready "
        "after this many seconds; with SCALER_WARNING_SURGE, also the longest a "
        "recommendation's drain waits for its services' replacements.",
    )
    drain_timeout: Seconds = Field(
        default=900.0,
        description="Lifecycle actions: complete with CONTINUE after this many seconds even if "
        "service tasks remain.",
    )
    drain_poll: Seconds = Field(
        default=10.0,
        description="Seconds between checks of a draining instance's remaining service tasks.",
    )
    lifecycle_heartbeat: Seconds = Field(
        default=60.0,
        description="Seconds between lifecycle heartbeats while an instance drains "
        "(keep it well under the hook's heartbeat timeout).",
    )
    warning_surge: bool = Field(
        default=True,
        description="At a spot interruption warning for an instance with tasks of a service "
        "with minimumHealthyPercent under 100, replacements first: raise the desired count of "
        "each service with tasks there by those tasks (warnings that arrive together add up; "
        "within maximumPercent of the count before), marked on the service with a "
        "`scaler:roll-surge` tag, and drain the instance once those that dip are steady and "
        "their tasks report HEALTHY, or SCALER_WARNING_SURGE_STOP_TIME before the "
        "interruption; set each count back once the instances drained (left alone if someone "
        "changed it meanwhile). A rebalance recommendation's drain waits so too, once the "
        "disruption budget admits it, SCALER_REPLACEMENT_TIMEOUT at the longest. The extra "
        "tasks need room in the cluster. Needs ecs:TagResource, ecs:UntagResource and "
        "ecs:UpdateService. Off (false): warned and recommended instances drain at once.",
    )
    warning_surge_stop_time: Seconds = Field(
        default=60.0,
        le=120.0,
        description="With SCALER_WARNING_SURGE: seconds before the interruption a warned "
        "instance drains at the latest; the longest its tasks take to stop gracefully (their "
        "stopTimeout, or their load balancer's deregistration delay if longer).",
    )
    scheduled_drain_lead: Seconds = Field(
        default=1800.0,
        description="AWS Health scheduled changes: drain this many seconds before the start time.",
    )
    undrain_after: Seconds = Field(
        default=1200.0,
        description="Seconds after which an instance the scaler drained on a rebalance "
        "recommendation is set ACTIVE again if no interruption warning, lifecycle action or "
        "state change came for it (a reboot-only scheduled change: when its window ends, or "
        "this long after its start); also how long a recommendation waits for the disruption "
        "budget and room before it is dropped.",
    )
    restart_standalone_tasks: bool = Field(
        default=False,
        description="Re-run standalone tasks (not in a service) elsewhere when their instance "
        "drains, then stop the originals.",
    )
    guard_interval: Seconds = Field(
        default=300.0,
        description="Seconds between checks for services whose drain cannot finish within a "
        "spot notice.",
    )

    # -- capacity top-up ----------------------------------------------------------------------
    spot_pools: Names = Field(
        default=(),
        description="Spot Auto Scaling groups the scaler may grow to top up lost capacity "
        "(comma-separated names; never groups owned by ECS managed scaling).",
    )
    on_demand_pools: Names = Field(
        default=(),
        description="On-demand Auto Scaling groups used as fallback when spot cannot serve "
        "(comma-separated names).",
    )
    spot_templates: Pairs = Field(
        default={},
        description="Spot pools without an Auto Scaling group: `pool=launch-template` pairs "
        "(template id or name, its default version), launched with EC2 Fleet (CreateFleet "
        "instant, price-capacity-optimized across SCALER_FLEET_INSTANCE_TYPES and "
        "SCALER_FLEET_SUBNETS) and tagged with the cluster and the pool.",
    )
    on_demand_templates: Pairs = Field(
        default={},
        description="On-demand fallback pools launched with EC2 Fleet, as `pool=launch-template` "
        "pairs (as SCALER_SPOT_TEMPLATES).",
    )
    fleet_instance_types: Names = Field(
        default=(),
        description="Instance types EC2 Fleet may choose from for template pools "
        "(comma-separated; none: the template's own). The first sizes the pool's instances.",
    )
    fleet_subnets: Names = Field(
        default=(),
        description="Subnets EC2 Fleet may launch template pools in, one per AZ "
        "(comma-separated; none: the template's network settings).",
    )
    fleet_max_size: int = Field(
        default=50, ge=0, description="Most instances in each template pool."
    )
    overflow_services: Pairs = Field(
        default={},
        description="Services allowed to overflow to Fargate, as `service=companion` pairs "
        "(comma-separated); each companion runs the same task on Fargate.",
    )
    headroom: float = Field(
        allow_inf_nan=False,
        default=0.05,
        ge=0,
        le=1,
        description="Share of the cluster's CPU kept free beyond what lost tasks need.",
    )
    headroom_cpu: int = Field(
        default=0,
        ge=0,
        description="ECS CPU units kept free at least (1024 = one vCPU), whatever the share "
        "gives; the larger of the two wins.",
    )
    headroom_memory: int = Field(
        default=0,
        ge=0,
        description="MiB of memory kept free at least, whatever the share gives; the larger of "
        "the two wins.",
    )
    headroom_per_az: bool = Field(
        default=False,
        description="Each AZ with instances also keeps the headroom free on its own, grown in "
        "the groups of that AZ (else in multi-AZ groups); the cluster-wide headroom still holds.",
    )
    max_on_demand: int = Field(
        default=20, ge=0, description="Most on-demand fallback instances at once."
    )
    on_demand_base: int = Field(
        default=0,
        ge=0,
        description="On-demand instances kept at all times (launched in the on-demand groups "
        "if missing, never given back to spot), as an Auto Scaling mixed-instances base.",
    )
    on_demand_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Percent of the instances above the base that the scaler launches (and "
        "keeps) on-demand; spot already running is not replaced to meet it.",
    )
    max_overflow_tasks: int = Field(
        default=100, ge=0, description="Most Fargate overflow tasks at once, all services."
    )
    max_hourly_spend: float = Field(
        allow_inf_nan=False,
        default=50.0,
        ge=0,
        description="Most USD per hour spent on on-demand fallback plus Fargate overflow.",
    )
    pool_cooldown: Seconds = Field(
        default=900.0,
        description="Seconds a spot pool that was interrupted or had no capacity is avoided.",
    )
    revert_after: Seconds = Field(
        default=1800.0,
        description="Seconds without spot trouble before on-demand fallback is given back.",
    )
    revert_batch: int = Field(
        default=2, ge=1, description="Most on-demand instances given back per capacity cycle."
    )
    capacity_interval: Seconds = Field(
        default=30.0, description="Seconds between capacity plans (also run after each drain)."
    )
    scale_in_after: float = Field(
        allow_inf_nan=False,
        default=900.0,
        ge=0,
        description="Seconds an instance of the scaler's pools must run no task before it is "
        "given back (drained, then terminated), when the headroom stays without it and no "
        "spot trouble came within SCALER_POOL_COOLDOWN; 0 keeps idle instances.",
    )
    evacuate_lead: Seconds = Field(
        default=20.0,
        description="Seconds before a notice ends when overflow services' tasks still on the "
        "instance are stopped gracefully.",
    )

    roll: bool = Field(
        default=False,
        description="Replace instances of the scaler's groups launched from another launch "
        "template version or image than the group launches now: a replacement first, then "
        "drain, then terminate. Off until turned on.",
    )
    roll_per_hour: int = Field(
        default=24, ge=1, description="Most out-of-date instances replaced an hour."
    )
    roll_surge: bool = Field(
        default=True,
        description="With SCALER_ROLL, before draining an out-of-date instance raise the desired "
        "count of each service with minimumHealthyPercent under 100 that has tasks on it, by "
        "those tasks (within maximumPercent), marked on the service with a `scaler:roll-surge` "
        "tag; drain once those services are steady (at most 600 s later) and set each count back "
        "once the instance holds none of its tasks (left alone if someone changed it meanwhile). "
        "Needs ecs:TagResource, ecs:UntagResource and ecs:UpdateService. Off: the roll drains "
        "at once and such services dip as in a deployment.",
    )
    disruption_budget: float = Field(
        allow_inf_nan=False,
        default=0.1,
        gt=0,
        le=1,
        description="Share of the instances the scaler may take out at once by its own choice "
        "(rolling new images, consolidating, migrating off Spot Fleets; at least one).",
    )
    consolidate: bool = Field(
        default=True,
        description="Scale in by consolidation: drain instances of the scaler's groups whose "
        "service tasks the other instances can take (placement as ECS does it), on-demand "
        "first, then terminate them once empty; not within SCALER_CONSOLIDATE_AFTER_START of "
        "the start nor SCALER_CONSOLIDATE_QUIET_AFTER of spot trouble.",
    )
    consolidate_interval: Seconds = Field(
        default=120.0, description="Seconds between consolidation plans (at the earliest)."
    )
    consolidate_per_hour: int = Field(
        default=60, ge=1, description="Most instances consolidation drains an hour."
    )
    consolidate_min_age: Seconds = Field(
        default=1800.0,
        description="Seconds an instance must have run before consolidation may remove it.",
    )
    consolidate_min_saving: float = Field(
        allow_inf_nan=False,
        default=0.01,
        ge=0,
        description="USD per hour an instance must cost for consolidation to remove it (spot "
        "instances are estimated at a third of the on-demand price).",
    )
    consolidate_keep_free: float = Field(
        allow_inf_nan=False,
        default=0.15,
        ge=0,
        lt=1,
        description="Share of the remaining CPU and memory consolidation leaves free, so the "
        "next deployment does not need the instance back.",
    )
    consolidate_quiet_after: Seconds = Field(
        default=7200.0,
        description="Seconds without spot trouble (a notice or a launch that found no "
        "capacity) before consolidation gives capacity back.",
    )
    consolidate_after_start: Seconds = Field(
        default=1800.0,
        description="Seconds after the scaler's start before consolidation gives capacity "
        "back: what it found running may be what the last storm or a rising demand needs.",
    )
    migrate_spot_fleets: Names = Field(
        default=(),
        description="Spot Fleet request ids to move off (comma-separated): read-only pools "
        "whose instances are drained at a pace once the scaler's groups have launched their "
        "replacements; each fleet's target capacity is lowered as its instances go.",
    )
    migrate_per_hour: int = Field(
        default=12, ge=1, description="Most Spot Fleet instances migrated an hour."
    )

    # -- task rebalancing ---------------------------------------------------------------------
    task_rebalance: bool = Field(
        default=False,
        description="Move running tasks off CPU-hot instances (StopTask; ECS starts the "
        "replacement where the service's placement puts it). Off until turned on.",
    )
    rebalance_interval: Seconds = Field(
        default=300.0, description="Seconds between task-rebalancing plans."
    )
    load_source: LoadSource = Field(
        default=LoadSource.RESERVED,
        description="What CPU load drives rebalancing: `reserved` (task reservations) or "
        "`measured` (CloudWatch CPUUtilization, average of the last 10 minutes).",
    )
    hot_threshold: float = Field(
        allow_inf_nan=False,
        default=0.8,
        gt=0,
        le=1,
        description="CPU share (reserved) above which an instance is hot.",
    )
    hot_deviation: float = Field(
        allow_inf_nan=False,
        default=0.3,
        ge=0,
        le=1,
        description="An instance is also hot when its CPU share is this far above the mean.",
    )
    max_moves: int = Field(default=5, ge=0, description="Most task moves per rebalancing plan.")
    max_moves_per_hour: int = Field(default=30, ge=0, description="Most task moves per hour.")
    task_cooldown: Seconds = Field(
        default=1800.0,
        description="Seconds after a move during which the service's newer tasks (the moved "
        "task's replacement) are not moved: no ping-pong.",
    )
    task_min_age: Seconds = Field(
        default=300.0, description="Seconds a task must have run before it may be moved."
    )

    # -- reservation advice -------------------------------------------------------------------
    advice: bool = Field(
        default=False,
        description="Advise task reservations from measured use (CloudWatch `AWS/ECS` "
        "CPUUtilization and MemoryUtilization per service) every rebalancing interval, as the "
        "`scaler_reservation_advice` metric; also on with SCALER_TASK_REBALANCE. Advice only: "
        "the scaler never changes a task definition.",
    )
    advice_window: Seconds = Field(
        default=86400.0, description="Seconds of measured use read back for advice."
    )
    advice_min_window: Seconds = Field(
        default=3600.0,
        description="Seconds the measurements must span before a service is advised.",
    )
    advice_min_samples: int = Field(
        default=30,
        ge=1,
        description="Measurements (5-minute averages) a service needs before it is advised.",
    )
    advice_over: float = Field(
        allow_inf_nan=False,
        default=1.1,
        gt=1,
        le=10,
        description="Advise a higher reservation when the 90th percentile of use is above this "
        "times the reservation.",
    )
    advice_under: float = Field(
        allow_inf_nan=False,
        default=0.5,
        gt=0,
        lt=1,
        description="Advise a lower reservation when the 90th percentile of use is below this "
        "times the reservation.",
    )
    advice_headroom: float = Field(
        allow_inf_nan=False,
        default=1.25,
        ge=1,
        le=4,
        description="Advised reservation: the 90th percentile of use times this, rounded up to "
        "64 CPU units or 64 MiB (at least 128). At 1 / SCALER_HOT_THRESHOLD, an instance full "
        "of advised reservations is not hot.",
    )
    sim_apply_advice: bool = Field(
        default=False,
        description="`scaler simulate` only: at each deployment of the scenario, the service's "
        "CPU reservation becomes the advised one (from the simulated use).",
    )

    lease_table: str | None = Field(
        default=None,
        description="DynamoDB table for the leader lease, so that replicas can share a cluster "
        "(only the leader tops up and rebalances; the replicas share there what they hear and "
        "the disruption budget of recommendation drains). Unset: this scaler is the only one.",
    )
    lease_duration: Seconds = Field(
        default=30.0,
        description="Seconds a leader lease lasts unless renewed (renewed every third of it).",
    )
    lease_margin: Seconds = Field(
        default=5.0,
        description="Seconds before its lease expires that a leader stops acting (clock skew "
        "between replicas must stay below this).",
    )

    @field_validator(
        "spot_pools",
        "on_demand_pools",
        "migrate_spot_fleets",
        "fleet_instance_types",
        "fleet_subnets",
        mode="before",
    )
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("spot_templates", "on_demand_templates", mode="before")
    @classmethod
    def _split_templates(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in (v.strip() for v in value.split(",") if v.strip()):
            pool, sep, template = (part.strip() for part in item.partition("="))
            if not sep or not pool or not template:
                raise ValueError(f"{item!r} is not pool=launch-template")
            if pool in pairs:
                raise ValueError(f"pool {pool!r} is listed twice")
            groups = (info.data.get("spot_pools") or ()) + (info.data.get("on_demand_pools") or ())
            if pool in groups or pool in (info.data.get("spot_templates") or {}):
                raise ValueError(f"pool {pool!r} is already named (pool names must be unique)")
            pairs[pool] = template
        return pairs

    @field_validator("overflow_services", mode="before")
    @classmethod
    def _split_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in (v.strip() for v in value.split(",") if v.strip()):
            service, sep, companion = item.partition("=")
            if not sep or not service.strip() or not companion.strip():
                raise ValueError(f"{item!r} is not service=companion")
            service, companion = service.strip(), companion.strip()
            if service == companion:
                raise ValueError(f"{item!r}: a service cannot be its own companion")
            if service in pairs:
                raise ValueError(f"{service!r} is listed twice")
            if companion in pairs.values():
                raise ValueError(f"companion {companion!r} is given to two services")
            pairs[service] = companion
        both = set(pairs) & set(pairs.values())
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is both a service and a companion")
        return pairs

    @field_validator("roll", "migrate_spot_fleets")
    @classmethod
    def _needs_groups(cls, value: Any, info: ValidationInfo) -> Any:
        pools = ("spot_pools", "on_demand_pools", "spot_templates", "on_demand_templates")
        if value and not any(info.data.get(p) for p in pools):
            raise ValueError(
                "needs the scaler's own groups (SCALER_SPOT_POOLS or SCALER_ON_DEMAND_POOLS) "
                "or template pools (SCALER_SPOT_TEMPLATES or SCALER_ON_DEMAND_TEMPLATES)"
            )
        if info.field_name == "migrate_spot_fleets":
            bad = [v for v in value if not v.startswith("sfr-")]
            if bad:
                raise ValueError(f"{bad[0]!r} is not a Spot Fleet request id (sfr-...)")
        return value

    @field_validator("cluster")
    @classmethod
    def _no_blank_cluster(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if not value.strip().rsplit("/", 1)[-1]:
            raise ValueError("names no cluster (nothing after the last '/')")
        return value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("on_demand_base", "on_demand_percent")
    @classmethod
    def _on_demand_mix(cls, value: int, info: ValidationInfo) -> int:
        if value and not (info.data.get("on_demand_pools") or info.data.get("on_demand_templates")):
            raise ValueError(
                "needs on-demand groups to launch in (SCALER_ON_DEMAND_POOLS or "
                "SCALER_ON_DEMAND_TEMPLATES)"
            )
        most = info.data.get("max_on_demand")
        if info.field_name == "on_demand_base" and most is not None and value > most:
            raise ValueError(f"must be at most SCALER_MAX_ON_DEMAND ({most})")
        return value

    @field_validator("queue_url", "lease_table", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `SCALER_LEASE_TABLE=` unsets it, as `scaler config --check` prints an unset value
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("lease_margin")
    @classmethod
    def _margin_inside_lease(cls, value: float, info: ValidationInfo) -> float:
        duration = info.data.get("lease_duration")
        if duration is not None and value > duration / 2:
            # a leader renews every third of the lease and must still hold it in between
            raise ValueError(f"must be at most half of SCALER_LEASE_DURATION ({duration / 2:g} s)")
        return value

    @property
    def cluster_name(self) -> str:
        """The cluster's short name, whether it was given as a name or an ARN."""
        return self.cluster.rsplit("/", 1)[-1]


class AwsEnv(BaseSettings):
    """The standard AWS variables the scaler reads (region and endpoint)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    aws_region: str | None = Field(default=None, description="AWS region (AWS_REGION).")
    aws_default_region: str | None = Field(
        default=None, description="AWS region when AWS_REGION is unset (AWS_DEFAULT_REGION)."
    )
    aws_endpoint_url: AnyHttpUrl | None = Field(
        default=None,
        description="One endpoint for every AWS service, e.g. a local test endpoint.",
    )

    @property
    def region(self) -> str | None:
        return self.aws_region or self.aws_default_region

    @property
    def endpoint_url(self) -> str | None:
        return str(self.aws_endpoint_url).rstrip("/") if self.aws_endpoint_url else None


class ConfigError(Exception):
    """Configuration is invalid; ``problems`` holds one line per problem, each naming a variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _env_name(prefix: str, loc: tuple[int | str, ...]) -> str:
    return prefix + str(loc[0]).upper() if loc else prefix.rstrip("_")


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        name = _env_name(prefix, tuple(err["loc"]))
        if err["type"] == "missing":
            lines.append(f"{name}: required but not set")
        else:
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return lines


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each ``SCALER_*`` variable that is no setting (in any letter case, as the
    settings are read), with the setting it most likely means: a misspelt ``SCALER_DRY_RUN``
    must stop the scaler, not let it act for real."""
    known = [name.upper() for name in Settings.model_fields]
    lines = []
    for variable in sorted(environ):
        upper = variable.upper()
        if upper.startswith(ENV_PREFIX) and upper.removeprefix(ENV_PREFIX) not in known:
            close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), known, n=1)
            hint = (
                f"did you mean {ENV_PREFIX}{close[0]}?"
                if close
                else "`scaler config` lists the settings"
            )
            lines.append(f"{variable}: unknown setting; {hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise :class:`ConfigError` naming each bad variable, and each
    ``SCALER_*`` variable that is not a setting."""
    unknown = unknown_variables(os.environ)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(unknown + _problems(exc, ENV_PREFIX)) from None
    if unknown:
        raise ConfigError(unknown)
    return settings


def load_aws_env() -> AwsEnv:
    """Read the standard AWS variables; raise :class:`ConfigError` naming each bad one."""
    try:
        return AwsEnv()
    except ValidationError as exc:
        raise ConfigError(_problems(exc, "")) from None


def require_region(aws: AwsEnv) -> str:
    """The region, or a :class:`ConfigError` naming both variables that could carry it."""
    if not aws.region:
        raise ConfigError(["AWS_REGION: required but not set (nor AWS_DEFAULT_REGION)"])
    return aws.region


# -- `scaler config`: the settings table ------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " | ".join(_type_name(a) for a in args) + " (optional)"
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return " | ".join(f"`{m.value}`" for m in annotation)
    if annotation is AnyHttpUrl:
        return "URL"
    if origin is tuple:
        return "names, comma-separated"
    if origin is dict:
        return "`key=value` pairs, comma-separated"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: Any) -> str:
    if field.is_required():
        return "(required)"
    value = field.default
    if value is None:
        return "(unset)"
    if isinstance(value, StrEnum):
        value = value.value
    if isinstance(value, bool):
        value = str(value).lower()
    if value in ((), {}):
        return "(none)"
    return f"`{value}`"


def settings_table() -> str:
    """Every ``SCALER_*`` setting as a Markdown table: name, type, default, description."""
    rows = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        env = ENV_PREFIX + name.upper()
        type_text = _type_name(field.annotation).replace("|", "\\|")
        rows.append(f"| `{env}` | {type_text} | {_default_text(field)} | {field.description} |")
    return "\n".join(rows) + "\n"


# -- `scaler config --check`: the values in effect ----------------------------------------------


def _env_text(value: Any) -> str:
    """A value as its variable takes it: lists comma-separated, pairs ``a=b,c=d``, unset empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def settings_env(settings: Settings) -> str:
    """Every setting in effect as a ``SCALER_X=value`` line, quoted for a POSIX shell where it
    needs to be: pasted back (or read as an environment), the lines give the same settings."""
    lines = []
    for name in Settings.model_fields:
        text = _env_text(getattr(settings, name))
        lines.append(f"{ENV_PREFIX}{name.upper()}={shlex.quote(text) if text else ''}")
    return "\n".join(lines) + "\n"
