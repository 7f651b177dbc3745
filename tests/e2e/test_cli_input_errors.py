"""Every input mistake, made on the real command: exit status 2, one line per problem, no trace.

Each case runs ``python -m scaler`` in a subprocess with a clean environment (no AWS is needed:
``simulate`` and ``config`` never call it, and the other commands stop at their settings before
any call; AWS_ENDPOINT_URL points at a closed local port in case one did not).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.scenario import to_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "scenarios" / "example.toml").read_text()
BASE_ENV = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
AWS_ENV = {
    "SCALER_CLUSTER": "prod",
    "SCALER_QUEUE_URL": "http://127.0.0.1:9/queue/events",
    "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def scaler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scaler", *args],
        env={**BASE_ENV, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The problem lines of a refused command, checked for status 2 and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("scaler: ") for line in lines), proc.stderr
    return [line.removeprefix("scaler: ") for line in lines]


def edited(old: str, new: str) -> str:
    assert old in EXAMPLE, old
    return EXAMPLE.replace(old, new, 1)


# file name -> (its text, the one problem line after "scaler: FILE: ")
SCENARIO_FILES: dict[str, tuple[str, str]] = {
    "toml-syntax.toml": (
        'name = "x"\nhours = [\n',
        "line 3, column 1: invalid TOML: Invalid value; fix the syntax there",
    ),
    "json-syntax.json": (
        '{"name": "x",\n  "hours": }\n',
        "line 2, column 12: invalid JSON: Expecting value; fix the syntax there",
    ),
    "top-level-key.toml": (
        "hour = 2\n" + EXAMPLE,
        "hour: unknown key; did you mean 'hours'?",
    ),
    "pool-key.toml": (
        edited("price = 0.0599", "pirce = 0.0599"),
        "pools[0].pirce: unknown key; did you mean 'price'?",
    ),
    "instance-type-key.toml": (
        edited("vcpu = 2", "vcpus = 2"),
        "instance_types[0].vcpus: unknown key; did you mean 'vcpu'?",
    ),
    "service-key.toml": (
        edited("desired = 18", "desird = 18"),
        "services[0].desird: unknown key; did you mean 'desired'?",
    ),
    "strategy-key.toml": (
        edited('{type = "binpack", field = "cpu"}', '{type = "binpack", feild = "cpu"}'),
        "services[2].strategies[0].feild: unknown key; did you mean 'field'?",
    ),
    "event-parameter.toml": (
        EXAMPLE + "rebalance_shares = 0.1\n",  # after [[events]]: a key of that event
        "events[0].rebalance_shares: unknown parameter for type 'storm'; did you mean "
        "'rebalance_share'?",
    ),
    "event-type.toml": (
        edited('type = "storm"', 'type = "strom"'),
        "events[0].type: unknown event type 'strom'; did you mean 'storm'?",
    ),
    "zero-hours.toml": (
        edited("hours = 2.0", "hours = 0"),
        "hours: must be more than 0 hours (got 0)",
    ),
    "negative-hours.toml": (
        edited("hours = 2.0", "hours = -2.0"),
        "hours: must be more than 0 hours (got -2.0)",
    ),
    "negative-duration.toml": (
        edited("unavailable_for = 3600", "unavailable_for = -60"),
        "events[0].unavailable_for: must be more than 0 seconds (got -60)",
    ),
    "wrong-type.toml": (
        edited("desired = 18", 'desired = "18"'),
        "services[0].desired: expected an integer, got '18' (text)",
    ),
    "top-level-list.json": (
        "[]",
        "expected a table (a JSON object) at the top of the file, got a list",
    ),
}


@pytest.mark.parametrize("name", list(SCENARIO_FILES))
def test_a_bad_scenario_file_is_one_line(tmp_path: Path, name: str) -> None:
    text, problem = SCENARIO_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    assert refused(scaler("simulate", "--scenario", str(path))) == [f"{path}: {problem}"]


def test_json_scenario_problems_at_every_level_one_line_each(tmp_path: Path) -> None:
    data = json.loads(json.dumps(to_dict(builtin("storm", instances=6, tasks=12, services=3))))
    data["pools"][1]["intial"] = 2
    data["services"][0]["strategies"][0]["feild"] = "cpu"
    data["events"][0]["over"] = "5m"
    data["hours"] = -1
    path = tmp_path / "storm.json"
    path.write_text(json.dumps(data))
    assert refused(scaler("simulate", "--scenario", str(path))) == [
        f"{path}: hours: must be more than 0 hours (got -1)",
        f"{path}: pools[1].intial: unknown key; did you mean 'initial'?",
        f"{path}: services[0].strategies[0].feild: unknown key; did you mean 'field'?",
        f"{path}: events[0].over: expected a number, got '5m' (text)",
    ]


def test_the_example_and_a_builtin_still_run(tmp_path: Path) -> None:
    path = tmp_path / "example.toml"
    path.write_text(EXAMPLE)
    proc = scaler("simulate", "--scenario", str(path), "--policy", "scaler", "--hours", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert "availability" in proc.stdout and proc.stderr == ""


# arguments -> the one problem line
ARGUMENTS: dict[str, tuple[list[str], str]] = {
    "zero hours": (
        ["simulate", "--scenario", "storm", "--hours", "0"],
        "--hours: must be a positive number of hours (got '0'); see `scaler simulate --help`",
    ),
    "negative hours": (
        ["simulate", "--scenario", "storm", "--hours", "-3"],
        "--hours: must be a positive number of hours (got '-3'); see `scaler simulate --help`",
    ),
    "nan hours": (
        ["simulate", "--scenario", "storm", "--hours", "nan"],
        "--hours: must be a positive number of hours (got 'nan'); see `scaler simulate --help`",
    ),
    "text hours": (
        ["simulate", "--scenario", "storm", "--hours", "two"],
        "--hours: 'two' is not a number of hours; see `scaler simulate --help`",
    ),
    "garbage seed": (
        ["simulate", "--scenario", "storm", "--seed", "x7"],
        "--seed: 'x7' is not a whole number (e.g. 7); see `scaler simulate --help`",
    ),
    "fractional seed": (
        ["simulate", "--scenario", "storm", "--seed", "1.5"],
        "--seed: '1.5' is not a whole number (e.g. 7); see `scaler simulate --help`",
    ),
    "snapshot hours": (
        ["snapshot", "--hours", "0"],
        "--hours: must be a positive number of hours (got '0'); see `scaler snapshot --help`",
    ),
    "snapshot format": (
        ["snapshot", "--out", "prod.yaml"],
        "--out: 'prod.yaml' names no format: end it in .toml or .json (or give - for stdout); "
        "see `scaler snapshot --help`",
    ),
    "no command": ([], "the following arguments are required: command; see `scaler --help`"),
    "demo timeout": (
        ["demo", "--timeout", "-1"],
        "--timeout: must be a positive number of seconds (got '-1'); see `scaler demo --help`",
    ),
    "no scenario": (
        ["simulate"],
        "the following arguments are required: --scenario; see `scaler simulate --help`",
    ),
    "misspelt builtin": (
        ["simulate", "--scenario", "strom"],
        "--scenario: 'strom' is neither a built-in (steady, storm, az-outage, deploy-skew, "
        "diurnal, ami-roll, fleet-250, big-tasks, az-storm, long-lead, dry-market, skew, "
        "skew-surge, skew-mix) nor a file; "
        "did you mean 'storm'?",
    ),
    "misspelt policy": (
        ["simulate", "--scenario", "storm", "--policy", "scalr"],
        "--policy: unknown policy 'scalr'; did you mean 'scaler'? (choose from scaler, "
        "ecs-native, ecs-scaler, oracle or all, or several separated by commas)",
    ),
    "a variant that is a setting now": (
        ["simulate", "--scenario", "storm", "--policy", "scaler-rolling"],
        "--policy: 'scaler-rolling' is no policy now; run SCALER_ROLL=true scaler simulate "
        "--policy scaler",
    ),
    "unknown option": (
        ["simulate", "--scenario", "storm", "--colour", "red"],
        "unrecognized arguments: --colour red; see `scaler --help`",
    ),
    "unknown command": (
        ["simulat"],
        "command: invalid choice: 'simulat' (choose from 'run', 'demo', 'simulate', "
        "'snapshot', 'plan', 'config'); see `scaler --help`",
    ),
}


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_a_bad_argument_is_one_line(case: str) -> None:
    args, problem = ARGUMENTS[case]
    assert refused(scaler(*args)) == [problem]


@pytest.mark.parametrize(
    "args", [["run"], ["plan"], ["snapshot", "--out", "-"], ["config", "--check"]]
)
def test_a_misspelt_dry_run_stops_every_command_that_reads_settings(args: list[str]) -> None:
    proc = scaler(*args, env={**AWS_ENV, "SCALER_DRYRUN": "true"})
    assert refused(proc) == ["SCALER_DRYRUN: unknown setting; did you mean SCALER_DRY_RUN?"]
    assert proc.stdout == ""


def test_unknown_and_bad_settings_are_one_line_each() -> None:
    env = {"SCALER_CLUSTER": "prod", "SCALER_CONCURENCY": "5", "SCALER_WAIT_TIME": "30"}
    assert refused(scaler("config", "--check", env=env)) == [
        "SCALER_CONCURENCY: unknown setting; did you mean SCALER_CONCURRENCY?",
        "SCALER_WAIT_TIME: Input should be less than or equal to 20 (got '30')",
    ]


def test_config_check_output_pastes_back_to_the_same_output() -> None:
    env = {
        "SCALER_CLUSTER": "prod",
        "SCALER_SPOT_POOLS": "spot-a,spot-b",
        "SCALER_ON_DEMAND_TEMPLATES": "od=lt-0123",
        "SCALER_OVERFLOW_SERVICES": "web=web-fargate",
        "SCALER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
        "SCALER_DRY_RUN": "yes",
    }
    first = scaler("config", "--check", env=env)
    assert first.returncode == 0, first.stderr
    pasted = dict(token.split("=", 1) for token in shlex.split(first.stdout))
    assert pasted["SCALER_LEASE_TABLE"] == "" and pasted["SCALER_DRY_RUN"] == "true"
    again = scaler("config", "--check", env=pasted)
    assert (again.returncode, again.stdout) == (0, first.stdout)
