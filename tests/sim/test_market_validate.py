"""The market keys of a scenario file: each mistake named in one line with its path; valid
files load and round-trip through plain data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from scaler.sim import validate
from scaler.sim.scenario import from_dict, to_dict
from tests.sim.test_market_format import raw


def good() -> dict[str, Any]:
    data = raw(
        market={
            "rates": [{"at": 0, "factor": 1.0}, {"at": 3600, "factor": 3}],
            "rebalance_share": 0.5,
            "rebalance_lead": [600, 1800],
            "false_recommendations_per_hour": 0.01,
        }
    )
    data["pools"][1].update(rebalance_lead=300, rates=[{"at": 60, "factor": 0}])
    data["events"] = [
        {
            "at": 900,
            "type": "storm",
            "share": 0.5,
            "over": 300,
            "rebalance_lead": [60, 120],
            "early_recommendations": True,
        },
        {"at": 1800, "type": "shortage", "duration": 600},
        {
            "at": 1800,
            "type": "shortage",
            "duration": 600,
            "az": "us-east-1a",
            "instance_types": ["m5.xlarge"],
            "pools": ["od-a"],
            "capacity": "any",
        },
    ]
    return data


def test_the_market_keys_are_valid_and_round_trip() -> None:
    data = good()
    assert validate.problems(data) == []
    scenario = from_dict(data)
    assert scenario.pools[0].rates == ((0.0, 1.0), (3600.0, 3.0))
    assert scenario.pools[0].rebalance_lead == (600.0, 1800.0)
    assert scenario.pools[1].rebalance_lead == 300
    assert scenario.pools[1].rates == ((60.0, 0.0),)
    assert scenario.pools[2].rates == (), "the market table is for spot pools"
    again = json.loads(json.dumps(to_dict(scenario)))
    assert validate.problems(again) == []
    assert from_dict(again) == scenario


def test_a_file_without_market_keys_writes_none() -> None:
    pools = to_dict(from_dict(raw()))["pools"]
    assert all(key not in pool for pool in pools for key in ("rates", "rebalance_lead"))


Edit = Callable[[dict[str, Any]], object]
CASES: dict[str, tuple[Edit, str]] = {
    "rates out of order": (
        lambda d: d["pools"][0].update(rates=[{"at": 60, "factor": 1}, {"at": 60, "factor": 2}]),
        "pools[0].rates[1].at: must be later than pools[0].rates[0].at (60), got 60; "
        "list the rates in time order",
    ),
    "negative factor": (
        lambda d: d["market"]["rates"][1].update(factor=-1),
        "market.rates[1].factor: must be at least 0 (got -1)",
    ),
    "rate without a factor": (
        lambda d: d["market"]["rates"][0].pop("factor"),
        "market.rates[0].factor: required but missing",
    ),
    "rates not a list": (
        lambda d: d["pools"][0].update(rates=2),
        "pools[0].rates: expected a list, got 2 (an integer)",
    ),
    "lead range upside down": (
        lambda d: d["market"].update(rebalance_lead=[900, 600]),
        "market.rebalance_lead: min 900 is more than max 600; give [min, max]",
    ),
    "lead range of three": (
        lambda d: d["events"][0].update(rebalance_lead=[1, 2, 3]),
        "events[0].rebalance_lead: expected a number of seconds or [min, max], got a list",
    ),
    "negative lead": (
        lambda d: d["pools"][1].update(rebalance_lead=[0, -5]),
        "pools[1].rebalance_lead[1]: must be at least 0 seconds (got -5)",
    ),
    "lead as text": (
        lambda d: d["market"].update(rebalance_lead="10m"),
        "market.rebalance_lead: expected a number, got '10m' (text)",
    ),
    "share above one": (
        lambda d: d["market"].update(rebalance_share=1.5),
        "market.rebalance_share: must be at most 1 (got 1.5)",
    ),
    "misspelt market key": (
        lambda d: d["market"].update(false_recommendation_per_hour=1),
        "market.false_recommendation_per_hour: unknown key; "
        "did you mean 'false_recommendations_per_hour'?",
    ),
    "negative false rate": (
        lambda d: d["pools"][0].update(false_recommendations_per_hour=-0.1),
        "pools[0].false_recommendations_per_hour: must be at least 0 (got -0.1)",
    ),
    "early not a boolean": (
        lambda d: d["events"][0].update(early_recommendations="yes"),
        "events[0].early_recommendations: expected true or false, got 'yes' (text)",
    ),
    "shortage without duration": (
        lambda d: d["events"][1].pop("duration"),
        "events[1].duration: required but missing",
    ),
    "shortage of no time": (
        lambda d: d["events"][1].update(duration=0),
        "events[1].duration: must be more than 0 seconds (got 0)",
    ),
    "shortage parameter": (
        lambda d: d["events"][1].update(share=0.5),
        "events[1].share: unknown parameter for type 'shortage' "
        "(valid: az, capacity, duration, instance_types, pools)",
    ),
    "shortage capacity": (
        lambda d: d["events"][2].update(capacity="spots"),
        "events[2].capacity: unknown value 'spots'; did you mean 'spot'?",
    ),
    "shortage az": (
        lambda d: d["events"][2].update(az="us-east-1z"),
        "events[2].az: no pool is in 'us-east-1z'; did you mean 'us-east-1b'?",
    ),
    "shortage pool": (
        lambda d: d["events"][2].update(pools=["od-a", "spot-c"]),
        "events[2].pools[1]: 'spot-c' is not a pool; did you mean 'spot-b'?",
    ),
    "shortage instance type": (
        lambda d: d["events"][2].update(instance_types=["m5.xlarg"]),
        "events[2].instance_types[0]: 'm5.xlarg' is not an instance type; "
        "did you mean 'm5.xlarge'?",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_one_line_naming_its_path(case: str) -> None:
    edit, line = CASES[case]
    data = good()
    edit(data)
    assert validate.problems(data) == [line]


def test_market_keys_on_an_on_demand_pool_are_refused() -> None:
    data = good()
    data["pools"][2]["false_recommendations_per_hour"] = 0.1
    assert validate.problems(data) == [
        "pools[2].false_recommendations_per_hour: only spot pools are interrupted; "
        "remove it from this on-demand pool"
    ]
