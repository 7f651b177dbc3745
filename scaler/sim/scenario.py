"""Scenarios: a cluster, its capacity pools, its services and what happens to them.

A scenario file is TOML or JSON with the same shape (see ``scenarios/example.toml``)::

    name = "my-cluster"
    hours = 2.0
    hot_threshold = 0.8            # modelled CPU share above which an instance is "hot"
    target_capacity = 100          # ecs-native: the capacity provider's targetCapacity (1-100)
    on_demand_base = 0             # ecs-native: the Auto Scaling group's on-demand base
    boot_delay = [60, 120]         # seconds from launch to registration, drawn in this range
    fargate_start_delay = [30, 60] # seconds a Fargate overflow task takes to start (the middle)
    image = "image-1"              # what instances launch from until a ``new_image`` event
    ecs_reserved_memory_mib = 0    # memory each instance registers with: its type's less this

    [settings]                     # SCALER_* settings for the scaler's policies (this file only:
    SCALER_HEADROOM = 0.1          # the environment is not read); the rest keep their defaults
    SCALER_REBALANCE_POLICY = "replace-then-drain"

    [[instance_types]]
    name = "m5.xlarge"
    vcpu = 4
    memory_mib = 16384
    on_demand_price = 0.192        # USD per hour

    [[pools]]                      # where capacity comes from
    name = "spot-m5.xlarge-us-east-1a"
    capacity = "spot"              # or "on-demand"
    instance_type = "m5.xlarge"
    az = "us-east-1a"
    price = 0.07                   # spot price (on-demand pools use the type's price)
    interruptions_per_hour = 0.0002  # per instance, outside storms (reclaims of the pool)
    initial = 10                   # instances registered at the start
    # capacity_provider = "cp-spot"  # its instances are this ECS capacity provider's
    # rates = [{at = 0, factor = 1.0}, {at = 3600, factor = 5.0}]  # from each at on (seconds),
    #                              # interruptions_per_hour and false recommendations times factor
    # rebalance_share = 0.5        # share of everyday warnings a rebalance recommendation precedes
    # rebalance_lead = [600, 1800] # ... this many seconds ahead (a number, or [min, max]: uniform)
    # false_recommendations_per_hour = 0.001  # per instance: recommendations never followed

    [market]                       # defaults for every spot pool's four keys above (a pool's
    rates = [{at = 0, factor = 1.0}]  # own key wins); all of them are optional

    [[services]]
    name = "web"
    desired = 40
    cpu = 512
    memory = 1024
    min_healthy_percent = 50
    max_percent = 200
    strategies = [{type = "spread", field = "attribute:ecs.availability-zone"},
                  {type = "binpack", field = "cpu"}]
    constraints = [{type = "distinctInstance"}]
    cpu_use = 0.6                  # modelled actual CPU / reserved CPU
    fargate_overflow = false
    # capacity_providers = ["cp-spot"]  # placed only on these providers' instances (any of them)
    # deregistration_delay = 300   # seconds a stopped task stays DEACTIVATING, holding its room
    # scheduling = "daemon"        # one task on every ACTIVE instance (desired not needed)

    [[events]]                     # at = seconds from the start
    at = 900
    type = "storm"                 # storm | shortage | az_outage | deploy | add_instances | scale
                                   # | new_image
    # deploy: share = 0.3 (of the services, by name), or services = ["web"] (or service = "web")
    # scale: factor = 2.0 (times the scenario's desired counts) or desired = 12 (a count, for
    #        the services named), for every service or those of services / service
    share = 0.3                    # storm: share of the spot pools reclaimed (drawn from all)
    over = 300                     # ... within this many seconds
    rebalance_share = 0.5          # ... of which this share gets a rebalance recommendation
    rebalance_lead = 600           # ... this many seconds before its warning ([min, max]: uniform)
    # early_recommendations = true # ... even before at: the storm is announced (see below)
    unavailable_for = 3600         # ... and the reclaimed pools have no spot capacity this long
    # az = "us-east-1a"            # ... aimed at one AZ: its spot capacity only, and
    # lasts = 1800                 # ... spot launched into it this long is reclaimed as well
    # pools = ["spot-a", "spot-b"] # ... drawn from these spot pools only
    # take = 0.5                   # ... and this share of each drawn pool's instances (default 1)

    [[events]]
    at = 3600
    type = "shortage"              # launches into these pools fail for duration seconds:
    duration = 1800                # every spot pool, or those of az, instance_types, pools
    # az = "us-east-1a"
    # instance_types = ["m5.xlarge"]
    # pools = ["spot-a", "od-a"]   # (on-demand pools too)
    # capacity = "spot"            # spot | on-demand | any (default: spot; any with pools)

The spot market draws everything from streams of its own (see :mod:`scaler.sim.market`), so each
policy meets the same interruptions. Everyday reclaims follow each pool's
``interruptions_per_hour`` times the factor of ``rates`` in force (1 before the first ``at``). A
storm with ``early_recommendations`` is drawn at ``at`` minus its longest lead: the instances in
its pools then are warned from ``at`` (within ``over``), each recommended ``rebalance_lead``
ahead of its warning, so before ``at``; without it recommendations come no earlier than ``at``.
Everyday reclaims with a ``rebalance_share`` are drawn likewise ahead of their time.

Built-in scenarios (:func:`builtin`) are generated from a few size parameters.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaler.ecs.cluster import Constraint, InstanceType, ServiceSpec, Strategy
from scaler.sim.validate import problems

DEFAULT_LEAD = 600.0  # seconds a rebalance recommendation comes ahead of its warning
MARKET_KEYS = ("rates", "rebalance_share", "rebalance_lead", "false_recommendations_per_hour")


@dataclass(frozen=True)
class Pool:
    name: str
    capacity: str  # "spot" | "on-demand"
    instance_type: str
    az: str
    price: float | None = None  # None: the type's on-demand price
    interruptions_per_hour: float = 0.0
    initial: int = 0
    capacity_provider: str | None = None  # the ECS capacity provider its instances belong to
    # the everyday market of a spot pool (a scenario's ``market`` table gives them to every one)
    rates: tuple[tuple[float, float], ...] = ()  # (from this second on, times the rates)
    rebalance_share: float = 0.0  # share of everyday warnings a recommendation comes ahead of
    rebalance_lead: float | tuple[float, float] = DEFAULT_LEAD  # seconds ahead; (min, max)
    false_recommendations_per_hour: float = 0.0  # per instance, never followed by a warning


@dataclass(frozen=True)
class Event:
    at: float
    type: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    hours: float
    instance_types: dict[str, InstanceType]
    pools: tuple[Pool, ...]
    services: tuple[ServiceSpec, ...]
    events: tuple[Event, ...] = ()
    hot_threshold: float = 0.8
    boot_delay: tuple[float, float] = (60.0, 120.0)
    fargate_start_delay: tuple[float, float] = (30.0, 60.0)
    image: str = "image-1"  # what instances launch from until a ``new_image`` event
    target_capacity: int = 100  # the baselines' capacity provider targetCapacity, percent
    on_demand_base: int = 0  # the baselines' Auto Scaling group OnDemandBaseCapacity
    ecs_reserved_memory_mib: int = 0  # ECS_RESERVED_MEMORY: registered memory = type's - this
    # SCALER_* settings for the scaler's policies, as given in the file (validated by Settings)
    settings: dict[str, Any] = field(default_factory=dict)

    def with_hours(self, hours: float) -> Scenario:
        from dataclasses import replace

        return replace(self, hours=hours)

    @property
    def azs(self) -> list[str]:
        return sorted({p.az for p in self.pools})


class ScenarioError(ValueError):
    """A scenario file that cannot be used: ``problems`` holds one line per mistake, each naming
    the value at fault (see :mod:`scaler.sim.validate`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _service(raw: dict[str, Any]) -> ServiceSpec:
    raw = dict(raw)
    raw.setdefault("desired", 0)  # a daemon service needs none
    raw["strategies"] = (
        tuple(Strategy(**s) for s in raw.get("strategies", ()))
        or ServiceSpec("x", 0, 0, 0).strategies
    )
    raw["constraints"] = tuple(Constraint(**c) for c in raw.get("constraints", ()))
    raw["capacity_providers"] = tuple(raw.get("capacity_providers", ()))
    return ServiceSpec(**raw)


def _pool(raw: dict[str, Any], market: dict[str, Any]) -> Pool:
    """A pool; a spot pool takes the ``market`` table's keys it does not set itself."""
    raw = {**market, **raw} if raw.get("capacity") == "spot" else dict(raw)
    if "rates" in raw:
        raw["rates"] = tuple((float(r["at"]), float(r["factor"])) for r in raw["rates"])
    if isinstance(raw.get("rebalance_lead"), list | tuple):
        low, high = raw["rebalance_lead"]
        raw["rebalance_lead"] = (float(low), float(high))
    return Pool(**raw)


def _pool_dict(pool: Pool) -> dict[str, Any]:
    """A pool as plain data, without the market keys it leaves at their defaults."""
    from dataclasses import asdict

    row = _without(asdict(pool), "capacity_provider")
    defaults = Pool("", "", "", "")
    for key in MARKET_KEYS:
        if getattr(pool, key) == getattr(defaults, key):
            row.pop(key)
    if "rates" in row:
        row["rates"] = [{"at": at, "factor": factor} for at, factor in pool.rates]
    if "rebalance_lead" in row and isinstance(pool.rebalance_lead, tuple):
        row["rebalance_lead"] = list(pool.rebalance_lead)
    return row


def from_dict(raw: dict[str, Any]) -> Scenario:
    """The scenario in ``raw``, or a :class:`ScenarioError` naming every mistake in it."""
    mistakes = problems(raw)
    if mistakes:
        raise ScenarioError(mistakes)
    try:
        types = {t["name"]: InstanceType(**t) for t in raw["instance_types"]}
        pools = tuple(_pool(p, raw.get("market", {})) for p in raw["pools"])
        services = tuple(_service(s) for s in raw["services"])
        events = tuple(
            Event(
                float(e["at"]), e["type"], {k: v for k, v in e.items() if k not in ("at", "type")}
            )
            for e in raw.get("events", ())
        )
        scenario = Scenario(
            name=raw.get("name", "scenario"),
            hours=float(raw.get("hours", 2.0)),
            instance_types=types,
            pools=pools,
            services=services,
            events=events,
            hot_threshold=float(raw.get("hot_threshold", 0.8)),
            target_capacity=int(raw.get("target_capacity", 100)),
            on_demand_base=int(raw.get("on_demand_base", 0)),
            boot_delay=_range(raw.get("boot_delay", (60.0, 120.0))),
            fargate_start_delay=_range(raw.get("fargate_start_delay", (30.0, 60.0))),
            image=str(raw.get("image", "image-1")),
            ecs_reserved_memory_mib=int(raw.get("ecs_reserved_memory_mib", 0)),
            settings=dict(raw.get("settings") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:  # what validation missed, named anyway
        raise ScenarioError([f"scenario is missing or has a bad field: {exc}"]) from None
    return scenario


def _range(value: Any) -> tuple[float, float]:
    least, most = value
    return float(least), float(most)


def load(path: Path) -> Scenario:
    """Read a ``.toml`` file (any other name is read as JSON); :class:`ScenarioError` names
    what is wrong: the file unreadable, its syntax (with line and column), or its content."""
    return from_dict(parse(path))


def parse(path: Path) -> Any:
    """The data in a scenario file, before validation."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            [f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
        ) from None
    except OSError as exc:
        raise ScenarioError([f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([_toml_syntax(str(exc), text)]) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ScenarioError([f"{where}: invalid JSON: {exc.msg}; fix the syntax there"]) from None
    except RecursionError:
        raise ScenarioError(["nested too deeply to read"]) from None


def _toml_syntax(message: str, text: str) -> str:
    """``line L, column C: invalid TOML: ...`` from tomllib's ``... (at line L, column C)``."""
    found = re.search(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$", message)
    if found is None:
        return f"invalid TOML: {message}; fix the syntax"
    if found[1]:
        line, column = int(found[1]), int(found[2])
    else:  # the end of the text: its last line, after its last character
        line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
    detail = message[: found.start()]
    return f"line {line}, column {column}: invalid TOML: {detail}; fix the syntax there"


def to_dict(s: Scenario) -> dict[str, Any]:
    """The scenario as plain data (what a scenario file holds)."""
    from dataclasses import asdict

    return {
        "name": s.name,
        "hours": s.hours,
        "hot_threshold": s.hot_threshold,
        "target_capacity": s.target_capacity,
        "on_demand_base": s.on_demand_base,
        "boot_delay": list(s.boot_delay),
        "fargate_start_delay": list(s.fargate_start_delay),
        "image": s.image,
        **(
            {"ecs_reserved_memory_mib": s.ecs_reserved_memory_mib}
            if s.ecs_reserved_memory_mib
            else {}
        ),
        **({"settings": dict(s.settings)} if s.settings else {}),
        "instance_types": [asdict(t) for t in s.instance_types.values()],
        "pools": [_pool_dict(p) for p in s.pools],
        "services": [_service_row(v) for v in s.services],
        "events": [{"at": e.at, "type": e.type, **e.params} for e in s.events],
    }


def _service_row(spec: ServiceSpec) -> dict[str, Any]:
    """A service as a file holds it: keys at their defaults left out where files written before
    them had none."""
    from dataclasses import asdict

    row = _without(asdict(spec), "capacity_providers")
    if spec.scheduling == ServiceSpec("x", 0, 0, 0).scheduling:
        row.pop("scheduling")
    if not spec.deregistration_delay:
        row.pop("deregistration_delay")
    return row


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    """``row`` without ``key`` where it is empty (files without capacity providers stay as they
    were)."""
    if row.get(key) in (None, (), []):
        row.pop(key, None)
    elif isinstance(row[key], tuple):
        row[key] = list(row[key])
    return row
