"""Checking a scenario file before it is used: every mistake named, one line each.

A scenario file is hand-written more often than not, so :func:`problems` reads the parsed data
against the shape :mod:`scaler.sim.scenario` documents and returns one line per mistake, each
starting with the path of the value at fault (``pools[2].price``, ``events[0].share``):

- a key the format does not have, at any depth, with the closest valid key when there is one;
- a required key that is missing;
- a value of the wrong type (the key, the type expected and what was given);
- a number out of range: lengths of time (``hours``, an outage's ``duration``) must be positive,
  shares lie between 0 and 1, counts are whole and not negative;
- an event type that does not exist, or a parameter its event does not take;
- names that must be unique and are not, and references to names that do not exist.

An empty list means the data builds a :class:`~scaler.sim.scenario.Scenario`. The checks are
plain functions of the data; reading and parsing the file is :func:`scaler.sim.scenario.load`'s.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scaler.ecs.placement import expression_problem

Check = Callable[[Any, str], list[str]]
_WORD = re.compile(r"[A-Za-z0-9_-]+")


def _given(value: Any) -> str:
    """What a value is, in the words of a scenario file."""
    kind = {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a table",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, list | dict) else ""
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{shown} ({kind})" if shown else kind


def _wrong(path: str, expected: str, value: Any) -> list[str]:
    return [f"{path}: expected {expected}, got {_given(value)}"]


def suggest(word: str, choices: list[str]) -> str:
    """``; did you mean 'x'?`` for the closest choice, else the list of choices (if any)."""
    if not choices:
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (valid: {', '.join(sorted(choices))})"


def text(*choices: str) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, str):
            return _wrong(path, "text", value)
        if choices and value not in choices:
            return [f"{path}: unknown value {value!r}{suggest(value, list(choices))}"]
        return []

    return check


def boolean(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, bool) else _wrong(path, "true or false", value)


def integer(least: int = 0, most: int | None = None) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int):
            return _wrong(path, "an integer", value)
        if value < least:
            return [f"{path}: must be at least {least} (got {value})"]
        if most is not None and value > most:
            return [f"{path}: must be at most {most} (got {value})"]
        return []

    return check


@dataclass(frozen=True)
class Number:
    """A finite number in a range; ``unit`` ends the message that names the range."""

    least: float | None = None  # inclusive
    above: float | None = None  # exclusive
    most: float | None = None  # inclusive
    unit: str = ""

    def __call__(self, value: Any, path: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _wrong(path, "a number", value)
        if not math.isfinite(value):
            return [f"{path}: must be a finite number (got {value!r})"]
        unit = f" {self.unit}" if self.unit else ""
        if self.above is not None and not value > self.above:
            return [f"{path}: must be more than {self.above:g}{unit} (got {value!r})"]
        if self.least is not None and value < self.least:
            return [f"{path}: must be at least {self.least:g}{unit} (got {value!r})"]
        if self.most is not None and value > self.most:
            return [f"{path}: must be at most {self.most:g}{unit} (got {value!r})"]
        return []


SECONDS = Number(least=0, unit="seconds")
DURATION = Number(above=0, unit="seconds")
SHARE = Number(least=0, most=1)
NOT_NEGATIVE = Number(least=0)


def optional(check: Check) -> Check:
    """``check``, or null (JSON files write an absent value as null)."""

    def either(value: Any, path: str) -> list[str]:
        return [] if value is None else check(value, path)

    return either


def texts(value: Any, path: str) -> list[str]:
    if not isinstance(value, list | tuple):
        return _wrong(path, "a list of text", value)
    return [line for n, v in enumerate(value) for line in text()(v, f"{path}[{n}]")]


@dataclass(frozen=True)
class Table:
    """A table with these keys (``required`` among them)."""

    keys: Mapping[str, Check]
    required: frozenset[str] = frozenset()

    def __call__(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return _wrong(path, "a table", value)
        lines = []
        meant: set[str] = set()  # keys a misspelt key is taken for: not missing as well
        for key, item in value.items():
            check = self.keys.get(key)
            if check is None:
                close = difflib.get_close_matches(key, list(self.keys), n=1, cutoff=0.6)
                meant.update(close)
                lines.append(f"{_at(path, key)}: unknown key{suggest(key, list(self.keys))}")
            else:
                lines += check(item, _at(path, key))
        missing = sorted(self.required - value.keys() - meant)
        return [f"{_at(path, key)}: required but missing" for key in missing] + lines


def _at(path: str, key: str) -> str:
    """``path.key``, or ``path['key']`` for a key that is not a plain word (quoted, escaped)."""
    if not _WORD.fullmatch(key):
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def many(check: Check) -> Check:
    """A list (an array of tables in TOML) whose every item passes ``check``."""

    def each(value: Any, path: str) -> list[str]:
        if not isinstance(value, list | tuple):  # tuples: data built in code (``to_dict``)
            return _wrong(path, "a list", value)
        return [line for n, item in enumerate(value) for line in check(item, f"{path}[{n}]")]

    return each


def lead(value: Any, path: str) -> list[str]:
    """Seconds: a number, or ``[min, max]`` (drawn uniformly between them)."""
    if not isinstance(value, list | tuple):
        return SECONDS(value, path)
    if len(value) != 2:
        return _wrong(path, "a number of seconds or [min, max]", value)
    lines = [line for n, v in enumerate(value) for line in SECONDS(v, f"{path}[{n}]")]
    if not lines and value[0] > value[1]:
        lines.append(f"{path}: min {value[0]!r} is more than max {value[1]!r}; give [min, max]")
    return lines


RATE = Table({"at": SECONDS, "factor": NOT_NEGATIVE}, frozenset({"at", "factor"}))


def rates(value: Any, path: str) -> list[str]:
    """``[{at, factor}, ...]`` with each ``at`` later than the one before."""
    lines = many(RATE)(value, path)
    if lines:
        return lines
    return [
        f"{path}[{n}].at: must be later than {path}[{n - 1}].at ({before['at']!r}), "
        f"got {after['at']!r}; list the rates in time order"
        for n, (before, after) in enumerate(itertools.pairwise(value), start=1)
        if after["at"] <= before["at"]
    ]


# a spot pool's everyday market; the scenario's ``market`` table gives them to every spot pool
MARKET_KEYS: dict[str, Check] = {
    "rates": rates,
    "rebalance_share": SHARE,
    "rebalance_lead": lead,
    "false_recommendations_per_hour": NOT_NEGATIVE,
}
MARKET = Table(MARKET_KEYS)


INSTANCE_TYPE = Table(
    {
        "name": text(),
        "vcpu": integer(1),
        "memory_mib": integer(1),
        "on_demand_price": Number(least=0, unit="USD per hour"),
    },
    frozenset({"name", "vcpu", "memory_mib", "on_demand_price"}),
)
POOL = Table(
    {
        "name": text(),
        "capacity": text("spot", "on-demand"),
        "instance_type": text(),
        "az": text(),
        "price": optional(Number(least=0, unit="USD per hour")),
        "interruptions_per_hour": NOT_NEGATIVE,
        "initial": integer(0),
        "capacity_provider": optional(text()),
        **MARKET_KEYS,
    },
    frozenset({"name", "capacity", "instance_type", "az"}),
)
STRATEGY = Table(
    {"type": text("binpack", "spread", "random"), "field": text()}, frozenset({"type"})
)
CONSTRAINT = Table(
    {"type": text("distinctInstance", "memberOf"), "expression": text()}, frozenset({"type"})
)


def constraint(value: Any, path: str) -> list[str]:
    """A placement constraint; a ``memberOf`` one with an expression the model can evaluate."""
    lines = CONSTRAINT(value, path)
    if lines or value["type"] != "memberOf":
        return lines
    problem = expression_problem(value.get("expression", ""))
    return [f"{_at(path, 'expression')}: {problem}"] if problem else []


SERVICE = Table(
    {
        "name": text(),
        "desired": integer(0),
        "cpu": integer(1),
        "memory": integer(1),
        "min_healthy_percent": integer(0),
        "max_percent": integer(100),
        "strategies": many(STRATEGY),
        "constraints": many(constraint),
        "cpu_use": NOT_NEGATIVE,
        "start_delay": SECONDS,
        "health_delay": SECONDS,
        "fargate_overflow": boolean,
        "launch_type": text("EC2", "FARGATE"),
        "overflow_of": optional(text()),
        "az_rebalancing": boolean,
        "capacity_providers": texts,
        "scheduling": text("replica", "daemon"),
        "deregistration_delay": SECONDS,
    },
    frozenset({"name", "desired", "cpu", "memory"}),
)
DAEMON = Table(SERVICE.keys, SERVICE.required - {"desired"})


def service(value: Any, path: str) -> list[str]:
    """A service; a daemon one (``scheduling = "daemon"``) needs no desired count (nor one
    whose scheduling is misspelt: that is the mistake to name)."""
    daemon = isinstance(value, dict) and value.get("scheduling", "replica") != "replica"
    return (DAEMON if daemon else SERVICE)(value, path)


def seconds_range(value: Any, path: str) -> list[str]:
    """``[least, most]`` seconds (a delay drawn in that range)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return _wrong(path, "[least, most] seconds", value)
    lines = [line for n, v in enumerate(value) for line in SECONDS(v, f"{path}[{n}]")]
    if not lines and value[0] > value[1]:
        lines.append(f"{path}: the least ({value[0]:g}) is more than the most ({value[1]:g})")
    return lines


def settings_table(value: Any, path: str) -> list[str]:
    """``SCALER_*`` settings as the scaler reads them from its environment, one line per key
    the real settings refuse (:mod:`scaler.sim.settings_file`)."""
    from scaler.sim.settings_file import settings_problems

    if not isinstance(value, dict):
        return _wrong(path, "a table", value)
    return [
        f"{_at(path, line.split(':', 1)[0])}:{line.split(':', 1)[1]}"
        for line in settings_problems(value)
    ]


# event type -> (its parameters, the required ones); what the simulator's handlers take
EVENTS: dict[str, Table] = {
    "storm": Table(
        {
            "share": SHARE,
            "over": SECONDS,
            "rebalance_share": SHARE,
            "rebalance_lead": lead,
            "unavailable_for": DURATION,
            "all_spot_pools": boolean,
            "az": text(),
            "lasts": SECONDS,
            "pools": many(text()),
            "take": SHARE,
            "early_recommendations": boolean,
        },
        frozenset({"share", "over"}),
    ),
    "shortage": Table(
        {
            "duration": DURATION,
            "az": text(),
            "instance_types": many(text()),
            "pools": many(text()),
            "capacity": text("spot", "on-demand", "any"),
        },
        frozenset({"duration"}),
    ),
    "az_outage": Table({"az": text(), "duration": DURATION}, frozenset({"az", "duration"})),
    "deploy": Table({"share": SHARE, "services": many(text()), "service": text()}),
    "add_instances": Table({"share": Number(above=0)}, frozenset({"share"})),
    "scale": Table(
        {
            "factor": Number(above=0),
            "desired": integer(0),
            "services": many(text()),
            "service": text(),
        }
    ),
    "new_image": Table({"image": text()}, frozenset({"image"})),
}


def event(value: Any, path: str) -> list[str]:
    """``at`` and ``type``, then the parameters of that type of event."""
    if not isinstance(value, dict):
        return _wrong(path, "a table", value)
    lines = [f"{_at(path, k)}: required but missing" for k in ("at", "type") if k not in value]
    if "at" in value:
        lines += SECONDS(value["at"], _at(path, "at"))
    kind = value.get("type")
    if kind is None:
        return lines
    if not isinstance(kind, str):
        return lines + _wrong(_at(path, "type"), "text", kind)
    params = EVENTS.get(kind)
    if params is None:
        unknown = f"unknown event type {kind!r}{suggest(kind, list(EVENTS))}"
        return [*lines, f"{_at(path, 'type')}: {unknown}"]
    rest = {k: v for k, v in value.items() if k not in ("at", "type")}
    for line in params(rest, path):
        lines.append(line.replace(": unknown key", f": unknown parameter for type {kind!r}", 1))
    return lines or _aimed(kind, rest, path)


def _aimed(kind: str, params: dict[str, Any], path: str) -> list[str]:
    """A deploy or scale event says what it does, and to which services, once."""
    named = "services" in params or "service" in params
    if "services" in params and "service" in params:
        return [f"{path}: give service or services, not both"]
    if kind == "deploy" and not named and "share" not in params:
        return [f"{path}: deploy needs share or services"]
    if kind == "deploy" and named and "share" in params:
        return [f"{path}: deploy takes share or services, not both"]
    if kind != "scale":
        return []
    if "factor" not in params and "desired" not in params:
        return [f"{path}: scale needs factor or desired"]
    if "factor" in params and "desired" in params:
        return [f"{path}: scale takes factor or desired, not both"]
    if "desired" in params and not named:
        return [f"{_at(path, 'desired')}: names a count: give services (or service) too"]
    return []


SCENARIO = Table(
    {
        "name": text(),
        "hours": Number(above=0, unit="hours"),
        "hot_threshold": Number(above=0, most=1),
        "target_capacity": integer(1, 100),  # the baselines' capacity provider, in percent
        "on_demand_base": integer(0),  # the baselines' Auto Scaling group
        "instance_types": many(INSTANCE_TYPE),
        "pools": many(POOL),
        "services": many(service),
        "events": many(event),
        "market": MARKET,  # the everyday market of every spot pool
        "notes": texts,  # what `scaler snapshot` estimated or left out
        "boot_delay": seconds_range,
        "fargate_start_delay": seconds_range,
        "image": text(),
        "ecs_reserved_memory_mib": integer(0),
        "settings": settings_table,
    },
    frozenset({"instance_types", "pools", "services"}),
)


def _unique(raw: dict[str, Any], key: str) -> list[str]:
    seen: dict[str, int] = {}
    lines = []
    for n, item in enumerate(raw[key]):
        name = item["name"]
        if name in seen:
            lines.append(
                f"{key}[{n}].name: {name!r} is already the name of {key}[{seen[name]}]; "
                "names must be unique"
            )
        seen.setdefault(name, n)
    return lines


def _references(raw: dict[str, Any]) -> list[str]:
    """Names used that are not defined: a pool's instance type, an outage's AZ, a service's
    capacity provider (no pool is its)."""
    types = [t["name"] for t in raw["instance_types"]]
    lines = [
        f"pools[{n}].instance_type: {p['instance_type']!r} is not in instance_types"
        f"{suggest(p['instance_type'], types) or '; add it there'}"
        for n, p in enumerate(raw["pools"])
        if p["instance_type"] not in types
    ]
    azs = sorted({p["az"] for p in raw["pools"]})
    lines += [
        f"events[{n}].az: no pool is in {e['az']!r}{suggest(e['az'], azs) or '; add a pool there'}"
        for n, e in enumerate(raw.get("events", ()))
        if e["type"] == "az_outage" and e["az"] not in azs
    ]
    lines += _shortages(raw, types, azs)
    lines += [
        f"pools[{n}].{key}: only spot pools are interrupted; remove it from this on-demand pool"
        for n, p in enumerate(raw["pools"])
        if p["capacity"] != "spot"
        for key in MARKET_KEYS
        if key in p
    ]
    providers = sorted({p["capacity_provider"] for p in raw["pools"] if p.get("capacity_provider")})
    lines += [
        f"services[{n}].capacity_providers[{k}]: no pool is capacity provider {name!r}"
        f"{suggest(name, providers) or '; set capacity_provider on its pools'}"
        for n, svc in enumerate(raw["services"])
        for k, name in enumerate(svc.get("capacity_providers", ()))
        if name not in providers
    ]
    return lines


def _shortages(raw: dict[str, Any], types: list[str], azs: list[str]) -> list[str]:
    """A shortage's AZ, instance types and pools must exist."""
    names = [p["name"] for p in raw["pools"]]
    lines = []
    for n, e in enumerate(raw.get("events", ())):
        if e["type"] != "shortage":
            continue
        if "az" in e and e["az"] not in azs:
            lines.append(
                f"events[{n}].az: no pool is in {e['az']!r}"
                f"{suggest(e['az'], azs) or '; add a pool there'}"
            )
        for key, what, known in (
            ("instance_types", "an instance type", types),
            ("pools", "a pool", names),
        ):
            lines += [
                f"events[{n}].{key}[{k}]: {name!r} is not {what}{suggest(name, known)}"
                for k, name in enumerate(e.get(key, ()))
                if name not in known
            ]
    return lines


def problems(raw: Any) -> list[str]:
    """One line per mistake in scenario data (as parsed from TOML or JSON); none if it is fine."""
    if not isinstance(raw, dict):
        return [f"expected a table (a JSON object) at the top of the file, got {_given(raw)}"]
    lines = SCENARIO(raw, "")
    if lines:
        return lines
    sections = ("instance_types", "pools", "services")
    return (
        [line for key in sections for line in _unique(raw, key)]
        + _references(raw)
        + _workload_references(raw)
    )


def _workload_references(raw: dict[str, Any]) -> list[str]:
    """Services a deploy or scale event names that do not exist; a memory reserve that leaves
    an instance type none."""
    names = [s["name"] for s in raw["services"]]
    lines = []
    for n, e in enumerate(raw.get("events", ())):
        if e["type"] not in ("deploy", "scale"):
            continue
        named = [(f"events[{n}].service", e["service"])] if "service" in e else []
        named += [(f"events[{n}].services[{k}]", v) for k, v in enumerate(e.get("services", ()))]
        lines += [
            f"{where}: no service is named {name!r}{suggest(name, names)}"
            for where, name in named
            if name not in names
        ]
    reserved = raw.get("ecs_reserved_memory_mib", 0)
    smallest = min(raw["instance_types"], key=lambda t: t["memory_mib"], default=None)
    if smallest is not None and reserved >= smallest["memory_mib"]:
        lines.append(
            f"ecs_reserved_memory_mib: {reserved} MiB leaves {smallest['name']} "
            f"({smallest['memory_mib']} MiB) no memory; reserve less than the smallest type has"
        )
    return lines
