"""Scenario files: every mistake named in one line, at any depth; valid files still load."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.sim import validate
from scaler.sim.builtin import NAMES, builtin
from scaler.sim.scenario import ScenarioError, from_dict, load, to_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "scenarios" / "example.toml"


def storm() -> dict[str, Any]:
    """A small storm scenario with a strategy and a constraint on its first service."""
    data: dict[str, Any] = json.loads(
        json.dumps(to_dict(builtin("storm", instances=6, tasks=12, services=3)))
    )
    data["services"][0]["constraints"] = [{"type": "distinctInstance"}]
    data["events"].append({"at": 60, "type": "az_outage", "az": "us-east-1a", "duration": 60})
    return data


def test_every_builtin_and_the_example_are_valid(tmp_path: Path) -> None:
    for name in NAMES:
        data = to_dict(builtin(name))
        assert validate.problems(data) == [], name
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        assert load(path) == builtin(name)
    assert load(EXAMPLE).name == "example"
    assert validate.problems(storm()) == []
    data = storm()
    data["services"][1]["constraints"] = [
        {"type": "memberOf", "expression": "attribute:ecs.instance-type == m5.xlarge"}
    ]
    assert validate.problems(data) == []


def mutate(edit: Callable[[dict[str, Any]], object]) -> list[str]:
    data = storm()
    edit(data)
    return validate.problems(data)


CASES: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "top-level key": (
        lambda d: d.update(hour=2),
        "hour: unknown key; did you mean 'hours'?",
    ),
    "instance type key": (
        lambda d: d["instance_types"][1].update(vcpus=2),
        "instance_types[1].vcpus: unknown key; did you mean 'vcpu'?",
    ),
    "pool key": (
        lambda d: d["pools"][0].update(pirce=0.1),
        "pools[0].pirce: unknown key; did you mean 'price'?",
    ),
    "service key": (
        lambda d: d["services"][2].update(desird=3),
        "services[2].desird: unknown key; did you mean 'desired'?",
    ),
    "strategy key": (
        lambda d: d["services"][0]["strategies"][0].update(feild="cpu"),
        "services[0].strategies[0].feild: unknown key; did you mean 'field'?",
    ),
    "constraint key": (
        lambda d: d["services"][0]["constraints"][0].update(expresion="x"),
        "services[0].constraints[0].expresion: unknown key; did you mean 'expression'?",
    ),
    "event parameter": (
        lambda d: d["events"][0].update(shar=0.2),
        "events[0].shar: unknown parameter for type 'storm'; did you mean 'share'?",
    ),
    "event parameter of another type": (
        lambda d: d["events"][1].update(share=0.2),
        "events[1].share: unknown parameter for type 'az_outage' (valid: az, duration)",
    ),
    "event type": (
        lambda d: d["events"][0].update(type="strom"),
        "events[0].type: unknown event type 'strom'; did you mean 'storm'?",
    ),
    "zero hours": (lambda d: d.update(hours=0), "hours: must be more than 0 hours (got 0)"),
    "target capacity above 100": (
        lambda d: d.update(target_capacity=120),
        "target_capacity: must be at most 100 (got 120)",
    ),
    "target capacity zero": (
        lambda d: d.update(target_capacity=0),
        "target_capacity: must be at least 1 (got 0)",
    ),
    "negative on-demand base": (
        lambda d: d.update(on_demand_base=-1),
        "on_demand_base: must be at least 0 (got -1)",
    ),
    "negative hours": (
        lambda d: d.update(hours=-1.5),
        "hours: must be more than 0 hours (got -1.5)",
    ),
    "infinite hours": (
        lambda d: d.update(hours=float("inf")),
        "hours: must be a finite number (got inf)",
    ),
    "zero outage": (
        lambda d: d["events"][1].update(duration=0),
        "events[1].duration: must be more than 0 seconds (got 0)",
    ),
    "negative unavailability": (
        lambda d: d["events"][0].update(unavailable_for=-5),
        "events[0].unavailable_for: must be more than 0 seconds (got -5)",
    ),
    "negative start": (
        lambda d: d["events"][0].update(at=-1),
        "events[0].at: must be at least 0 seconds (got -1)",
    ),
    "text for a number": (
        lambda d: d.update(hours="2"),
        "hours: expected a number, got '2' (text)",
    ),
    "text for an integer": (
        lambda d: d["services"][1].update(desired="ten"),
        "services[1].desired: expected an integer, got 'ten' (text)",
    ),
    "fraction for an integer": (
        lambda d: d["pools"][0].update(initial=1.5),
        "pools[0].initial: expected an integer, got 1.5 (a number)",
    ),
    "text for a flag": (
        lambda d: d["services"][0].update(fargate_overflow="yes"),
        "services[0].fargate_overflow: expected true or false, got 'yes' (text)",
    ),
    "table for a list": (
        lambda d: d.update(pools={"name": "x"}),
        "pools: expected a list, got a table",
    ),
    "text for a table": (
        lambda d: d["events"].append("storm"),
        "events[2]: expected a table, got 'storm' (text)",
    ),
    "unknown capacity": (
        lambda d: d["pools"][0].update(capacity="spto"),
        "pools[0].capacity: unknown value 'spto'; did you mean 'spot'?",
    ),
    "missing section": (
        lambda d: d.pop("instance_types"),
        "instance_types: required but missing",
    ),
    "missing event parameter": (
        lambda d: d["events"][1].pop("az"),
        "events[1].az: required but missing",
    ),
    "unknown instance type": (
        lambda d: d["pools"][0].update(instance_type="m5.xlarg"),
        "pools[0].instance_type: 'm5.xlarg' is not in instance_types; did you mean 'm5.xlarge'?",
    ),
    "unknown AZ": (
        lambda d: d["events"][1].update(az="us-east1a"),
        "events[1].az: no pool is in 'us-east1a'; did you mean 'us-east-1a'?",
    ),
    "memberOf the model cannot evaluate": (
        lambda d: d["services"][0].update(constraints=[{"type": "memberOf", "expression": "x"}]),
        "services[0].constraints[0].expression: unsupported memberOf expression: 'x' (the model "
        "knows ==, !=, in, !in on attribute:ecs.availability-zone, "
        "attribute:ecs.capacity-provider-name, attribute:ecs.instance-type, ec2InstanceId)",
    ),
    "capacity provider of no pool": (
        lambda d: d["services"][0].update(capacity_providers=["cp-a"]),
        "services[0].capacity_providers[0]: no pool is capacity provider 'cp-a'; set "
        "capacity_provider on its pools",
    ),
    "capacity providers not a list": (
        lambda d: d["services"][0].update(capacity_providers="cp-a"),
        "services[0].capacity_providers: expected a list of text, got 'cp-a' (text)",
    ),
    "capacity provider not text": (
        lambda d: d["pools"][0].update(capacity_provider=3),
        "pools[0].capacity_provider: expected text, got 3 (an integer)",
    ),
    "duplicate name": (
        lambda d: d["services"][1].update(name=d["services"][0]["name"]),
        "services[1].name: 'svc-000' is already the name of services[0]; names must be unique",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_one_line_naming_it(case: str) -> None:
    edit, line = CASES[case]
    assert mutate(edit) == [line]


def test_a_misspelt_required_key_is_not_also_reported_missing() -> None:
    def misspell(data: dict[str, Any]) -> None:
        data["pools"][0]["nme"] = data["pools"][0].pop("name")

    assert mutate(misspell) == ["pools[0].nme: unknown key; did you mean 'name'?"]


def test_several_mistakes_give_one_line_each() -> None:
    def edits(data: dict[str, Any]) -> None:
        data.update(hours=0, colour="red")
        data["pools"][1]["pirce"] = 1

    assert mutate(edits) == [  # in the order of the file
        "hours: must be more than 0 hours (got 0)",
        "pools[1].pirce: unknown key; did you mean 'price'?",
        "colour: unknown key (valid: boot_delay, ecs_reserved_memory_mib, events, "
        "fargate_start_delay, hot_threshold, hours, image, instance_types, market, name, notes, "
        "on_demand_base, pools, services, settings, target_capacity)",
    ]


def tables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    """Every table in the data: its path, itself, and the keys it may hold."""
    found: list[tuple[str, dict[str, Any], set[str]]] = [("", data, set(validate.SCENARIO.keys))]
    sections = {
        "instance_types": validate.INSTANCE_TYPE,
        "pools": validate.POOL,
        "services": validate.SERVICE,
    }
    for section, table in sections.items():
        for n, item in enumerate(data[section]):
            found.append((f"{section}[{n}]", item, set(table.keys)))
    for n, service in enumerate(data["services"]):
        for key, table in (("strategies", validate.STRATEGY), ("constraints", validate.CONSTRAINT)):
            for m, item in enumerate(service.get(key, ())):
                found.append((f"services[{n}].{key}[{m}]", item, set(table.keys)))
    for n, event in enumerate(data["events"]):
        keys = set(validate.EVENTS[event["type"]].keys) | {"at", "type"}
        found.append((f"events[{n}]", event, keys))
    return found


TABLES = len(tables(storm()))


@given(
    where=st.integers(min_value=0, max_value=TABLES - 1),
    key=st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20),
    value=st.none() | st.integers() | st.text(max_size=5),
)
def test_an_unknown_key_at_any_level_is_named_with_its_path(
    where: int, key: str, value: Any
) -> None:
    data = storm()
    path, table, valid = tables(data)[where]
    if key in valid:
        return
    table[key] = value
    problems = validate.problems(copy.deepcopy(data))
    assert len(problems) == 1, problems
    name = f"{path}.{key}" if path else key
    assert problems[0].startswith(f"{name}: unknown "), problems


def test_from_dict_raises_every_problem() -> None:
    data = storm()
    data.update(hours=-1, hour=1)
    with pytest.raises(ScenarioError) as raised:
        from_dict(data)
    assert len(raised.value.problems) == 2


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        (
            "bad.toml",
            'name = "x"\nhours = [\n',
            "line 3, column 1: invalid TOML: Invalid value; fix the syntax there",
        ),
        (
            "bad.toml",
            'name = "x"\nhours 2\n',
            "line 2, column 7: invalid TOML: Expected '=' after a key in a key/value pair; fix "
            "the syntax there",
        ),
        (
            "bad.json",
            '{"name": "x",\n "hours": }',
            "line 2, column 11: invalid JSON: Expecting value; fix the syntax there",
        ),
        (
            "list.json",
            "[1, 2]",
            "expected a table (a JSON object) at the top of the file, got a list",
        ),
    ],
)
def test_syntax_errors_give_line_and_column(
    tmp_path: Path, name: str, text: str, line: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        load(path)
    assert raised.value.problems == [line]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ScenarioError) as raised:
        load(path)
    assert raised.value.problems == ["not UTF-8 text (byte 11); save the file as UTF-8"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in the data."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += places(item, (*path, n))
    return found


PLACES = places(storm())


@given(where=st.sampled_from(PLACES[1:]), value=JSON)
def test_any_value_anywhere_builds_or_is_named(where: tuple[Any, ...], value: Any) -> None:
    data = storm()
    parent = data
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = value
    try:
        from_dict(data)
    except ScenarioError as exc:
        assert exc.problems and all("\n" not in line for line in exc.problems)
        assert not any(line.startswith("scenario is missing") for line in exc.problems)


def test_a_reference_with_nothing_close_says_what_to_add() -> None:
    pool = {"name": "p", "capacity": "spot", "instance_type": "m5.large", "az": "us-east-1a"}
    outage = {"at": 0, "type": "az_outage", "az": "zone-9", "duration": 60}
    data = {"instance_types": [], "pools": [pool], "services": [], "events": [outage]}
    assert validate.problems(data) == [
        "pools[0].instance_type: 'm5.large' is not in instance_types; add it there",
        "events[0].az: no pool is in 'zone-9' (valid: us-east-1a)",
    ]
    data["pools"] = []
    assert validate.problems(data) == ["events[0].az: no pool is in 'zone-9'; add a pool there"]
