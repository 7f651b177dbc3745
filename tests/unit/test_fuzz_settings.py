"""Fuzzing the SCALER_* environment: every environment loads, or fails naming its variables.

test_settings.py checks chosen values. Here hypothesis builds whole environments: real
variable names (in any letter case) and unknown ``SCALER_*`` ones, with hostile values (empty,
whitespace, unicode, huge and negative numbers, ``nan``/``inf``, commas, ``=`` pairs). The
entry point is the CLI's own: ``scaler config --check`` (``scaler.cli.main``), which turns a
:class:`~scaler.settings.ConfigError` into ``scaler: SCALER_X: ...`` lines and exit status 2.
Either the settings load and every value keeps the constraints declared on its field, or every
problem line names a real variable that is set (or required and missing, or the partner of a set
one in a cross-field rule, naming it), and exactly those variables that fail on their own, and
every ``SCALER_*`` variable that is no setting (refused: a misspelt setting must not be
ignored). Never another exception, never a line without its variable. (Plain ``scaler config``
prints the table and validates nothing; ``--check`` is the command that reads the environment.)
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from unittest import mock

import annotated_types
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import AnyHttpUrl

from scaler.cli import EXIT_CONFIG, main
from scaler.settings import ENV_PREFIX, ConfigError, Settings, load_aws_env, load_settings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = dict(Settings.model_fields)
ENV_OF = {name: ENV_PREFIX + name.upper() for name in FIELDS}
KNOWN = frozenset(ENV_OF.values())
REQUIRED = frozenset(ENV_OF[n] for n, f in FIELDS.items() if f.is_required())
OPTIONAL = sorted(n for n, f in FIELDS.items() if not f.is_required())


def _cross_field() -> frozenset[str]:
    """Variables in a rule over two settings: a field validator that reads another field
    (``info.data``), and the fields it reads. Only these may fail because of each other."""
    involved: set[str] = set()
    for decorator in Settings.__pydantic_decorators__.field_validators.values():
        source = inspect.getsource(decorator.func)
        if "info.data" not in source:
            continue
        # the fields it names, whether read one by one or through a tuple of names
        others = {w for w in re.findall(r"""["'](\w+)["']""", source) if w in ENV_OF}
        involved |= {*decorator.info.fields, *others}
    return frozenset(ENV_OF[name] for name in involved if name in ENV_OF)


CROSS_FIELD = _cross_field()
PROBLEM = re.compile(r"^(SCALER_[A-Z0-9_]+): (\S.*)$")
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, env, clear=True):
        yield


def run_config_check(env: Mapping[str, str]) -> tuple[int, str, str]:
    """``scaler config --check`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["config", "--check"])
    return status, out.getvalue(), err.getvalue()


def problems_of(env: Mapping[str, str]) -> list[str] | None:
    with environment(env):
        try:
            load_settings()
        except ConfigError as exc:
            return exc.problems
    return None


# --- values ----------------------------------------------------------------------------------

ENV_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\t\n",
        "\u00a0",
        "\u3000",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "0",
        "-1",
        "+5",
        "1_000",
        "0x10",
        "1,5",
        "1.5",
        "٣",  # an Arabic-Indic digit
        "\uff11\uff10",  # full-width digits
        "9" * 40,
        "9" * 5000,
        "-" + "9" * 40,
        "true",
        "False",
        "yes",
        "off",
        "json",
        "TEXT",
        "\u0131nfo",  # dotless i: upper() makes INFO
        "ﬁ",  # a ligature: upper() makes two letters
        "http://",
        "ftp://queue",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "https://" + "a" * 300 + ".example",
        "a=b",
        "=",
        "a=",
        "=b",
        "a=b=c",
        "a=b,a=c",
        "a=a",
        "a=b,,c=d,",
        " a = b , c = d ",
        "a,b",
        ",,,",
        '["a", "b"]',
        '{"a": "b"}',
        "☃,😀",
        "\u202eevil",
    ]
)
NUMBERS = (
    st.integers(-(10**30), 10**30).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.floats(-1e6, 1e6).map(lambda x: f"{x:g}")
    | st.integers(-100, 50_000).map(lambda n: f" {n} ")
)
NAME = st.text(ENV_CHARS, max_size=8) | st.sampled_from(["web", "api", "spot-a", " ", "=", ""])
PAIRS = st.lists(
    st.tuples(NAME, st.sampled_from(["=", "==", "", " = ", ":"]), NAME).map("".join), max_size=4
).map(",".join)
NAMES = st.lists(NAME, max_size=4).map(lambda parts: ",".join(parts))


def value_for(field: str) -> st.SearchStrategy[str]:
    """Hostile text for ``field``, biased toward its own type so valid values occur too."""
    annotation = FIELDS[field].annotation
    typed: st.SearchStrategy[str] = st.nothing()
    if annotation in (int, float):
        typed = NUMBERS
    elif isinstance(annotation, type) and issubclass(annotation, StrEnum):
        members = [m.value for m in annotation]
        typed = st.sampled_from(members) | st.sampled_from(members).map(str.swapcase)
    elif field == "overflow_services":
        typed = PAIRS
    elif field in ("spot_pools", "on_demand_pools"):
        typed = NAMES
    elif annotation is bool:
        typed = st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "off", "maybe"])
    return typed | NASTY | st.text(ENV_CHARS, max_size=20)


def any_case(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.title(), name.swapcase()])


UNKNOWN = st.from_regex(r"SCALER_[A-Z][A-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: n.upper() not in KNOWN
)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    env: dict[str, str] = {}
    fields = draw(st.lists(st.sampled_from(OPTIONAL), max_size=6, unique=True), label="fields")
    if draw(st.integers(0, 4), label="with cluster"):  # mostly set: the rest gets checked
        fields.append("cluster")
    for field in fields:  # one spelling per variable (two would race in os.environ's order)
        value = draw(value_for(field) | st.just("prod") if field == "cluster" else value_for(field))
        env[draw(any_case(ENV_OF[field]), label="spelling")] = value
    for name in draw(st.lists(UNKNOWN, max_size=3, unique=True)):
        env[name] = draw(st.text(ENV_CHARS, max_size=10) | NASTY)
    return env


# --- the oracle ------------------------------------------------------------------------------


def assert_keeps_its_constraints(loaded: Settings) -> None:
    for name, field in FIELDS.items():
        value = getattr(loaded, name)
        annotation = field.annotation
        if isinstance(value, float):
            assert not math.isnan(value), name
        if isinstance(value, bool):
            assert annotation is bool, name
        for rule in field.metadata:
            if isinstance(rule, annotated_types.Gt):
                assert value > rule.gt, (name, value)
            elif isinstance(rule, annotated_types.Ge):
                assert value >= rule.ge, (name, value)
            elif isinstance(rule, annotated_types.Lt):
                assert value < rule.lt, (name, value)
            elif isinstance(rule, annotated_types.Le):
                assert value <= rule.le, (name, value)
            elif isinstance(rule, annotated_types.MinLen):
                assert len(value) >= rule.min_length, (name, value)
        if annotation in (int, float):
            assert type(value) is annotation, (name, value)
        if isinstance(annotation, type) and issubclass(annotation, StrEnum):
            assert isinstance(value, annotation), name
    assert loaded.cluster == loaded.cluster.strip() and loaded.cluster, loaded.cluster
    for pools in (loaded.spot_pools, loaded.on_demand_pools):
        assert isinstance(pools, tuple)
        assert all(p and p == p.strip() and "," not in p for p in pools), pools
    for service, companion in loaded.overflow_services.items():
        for part in (service, companion):
            assert part and part == part.strip() and "," not in part, loaded.overflow_services
        assert "=" not in service
    if loaded.queue_url is not None:
        assert isinstance(loaded.queue_url, AnyHttpUrl)
        assert loaded.queue_url.scheme in ("http", "https") and loaded.queue_url.host


def assert_names_its_variables(env: Mapping[str, str], problems: list[str]) -> None:
    assert problems, "a ConfigError without a problem"
    set_names = {k.upper() for k in env}
    unknown = {k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in KNOWN}
    named = []
    for line in problems:
        assert "\n" not in line and "\r" not in line, line  # one line per problem
        match = PROBLEM.match(line)
        assert match, f"problem does not start with a variable name: {line!r}"
        variable = match.group(1)
        if variable in unknown:
            assert line.startswith(f"{variable}: unknown setting; "), line
            named.append(variable)
            continue
        assert variable in KNOWN, f"not a setting: {line!r}"
        if variable not in set_names:
            if variable in REQUIRED:
                assert line == f"{variable}: required but not set", line
            else:  # a rule over two settings: the line must name the one that was set
                assert variable in CROSS_FIELD, line
                assert any(v in line for v in CROSS_FIELD & set_names), line
        named.append(variable)
    assert len(named) == len(set(named)), f"a variable reported twice: {problems}"
    # exactly the variables that fail on their own (those in cross-field rules aside)
    expected = (REQUIRED - set_names) | unknown
    for key, value in env.items():
        variable = key.upper()
        if variable in REQUIRED:
            alone = {variable: value}
        elif variable in KNOWN - CROSS_FIELD:
            alone = {ENV_OF["cluster"]: "prod", key: value}
        else:
            continue
        if problems_of(alone) is not None:
            expected |= {variable}
    assert set(named) - CROSS_FIELD == expected, (named, expected)


# --- properties ----------------------------------------------------------------------------


@FUZZ
@given(environments())
def test_config_check_loads_or_names_every_bad_variable(env: dict[str, str]) -> None:
    status, out, err = run_config_check(env)
    problems = problems_of(env)
    event("loads" if problems is None else f"{len(problems)} problem(s)")
    if problems is None:
        assert status == 0 and err == ""
        with environment(env):
            loaded = load_settings()
        assert_keeps_its_constraints(loaded)
        printed = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
        assert printed >= KNOWN
    else:
        assert status == EXIT_CONFIG and out == ""
        assert err.splitlines() == [f"scaler: {p}" for p in problems]
        assert "Traceback" not in err
        assert_names_its_variables(env, problems)


@FUZZ
@given(environments())
def test_config_check_prints_lines_that_load_back_the_same(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k.upper() in KNOWN}
    if problems_of(env) is not None:
        return
    status, out, err = run_config_check(env)
    assert (status, err) == (0, "")
    printed = dict(token.split("=", 1) for token in shlex.split(out))  # as a shell reads them
    assert set(printed) == KNOWN
    with environment(env):
        loaded = load_settings()
    with environment(printed):
        assert load_settings() == loaded


@FUZZ
@given(field=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_one_variable_alone(field: str, data: st.DataObject) -> None:
    """One setting at a time, every kind of value, with a valid cluster."""
    value = data.draw(value_for(field), label="value")
    env = {ENV_OF["cluster"]: "prod", ENV_OF[field]: value}
    problems = problems_of(env)
    if problems is None:
        with environment(env):
            assert_keeps_its_constraints(load_settings())
    else:
        assert len(problems) == 1, problems
        if ENV_OF[field] in CROSS_FIELD:  # may be reported by its partner, naming it
            assert ENV_OF[field] in problems[0], problems
        else:
            assert problems[0].startswith(f"{ENV_OF[field]}: "), problems


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "AWS_REGION": st.text(ENV_CHARS, max_size=12) | NASTY,
            "AWS_DEFAULT_REGION": st.text(ENV_CHARS, max_size=12) | NASTY,
            "AWS_ENDPOINT_URL": st.text(ENV_CHARS, max_size=30) | NASTY,
        },
    )
)
def test_aws_variables_load_or_name_themselves(env: dict[str, str]) -> None:
    with environment(env):
        try:
            aws = load_aws_env()
        except ConfigError as exc:
            for line in exc.problems:
                name = line.split(":", 1)[0]
                assert name in env and name.startswith("AWS_"), line
            return
    if aws.endpoint_url is not None:
        assert aws.endpoint_url.startswith(("http://", "https://"))


def test_unknown_scaler_variables_are_refused_naming_the_setting_meant() -> None:
    env = {"SCALER_CLUSTER": "prod", "SCALER_CONCURENCY": "ten", "SCALER_": "x", "SCALER_1": ""}
    assert problems_of(env) == [
        "SCALER_: unknown setting; `scaler config` lists the settings",
        "SCALER_1: unknown setting; `scaler config` lists the settings",
        "SCALER_CONCURENCY: unknown setting; did you mean SCALER_CONCURRENCY?",
    ]
    assert problems_of({"SCALER_CLUSTER": "prod", "scaler_dryrun": "true"}) == [
        "scaler_dryrun: unknown setting; did you mean SCALER_DRY_RUN?"
    ]
    assert problems_of({"scaler_cluster": "prod", "Scaler_Dry_Run": "true"}) is None


# --- the real command, as an operator runs it --------------------------------------------------

# variable -> value (bytes where the environment is not UTF-8), run with a clean environment
NASTY_COMMANDS: dict[str, tuple[str, str | bytes]] = {
    "huge-int": ("SCALER_CONCURRENCY", "9" * 5000),
    "nan": ("SCALER_DEDUP_TTL", "nan"),
    "bad-pair": ("SCALER_OVERFLOW_SERVICES", "web=web-fargate,api"),
    "unicode": ("SCALER_LOG_LEVEL", "☃"),
    "not-utf8": ("SCALER_DRAIN_BATCH_WINDOW", b"\xff\xfe"),
    "blank-cluster": ("SCALER_CLUSTER", " \t "),
}


def test_config_check_command_exits_2_naming_the_variable() -> None:
    procs = {}
    for case, (variable, value) in NASTY_COMMANDS.items():
        env: dict[bytes, bytes] = {b"PATH": b"/usr/bin:/bin", b"SCALER_CLUSTER": b"prod"}
        env[variable.encode()] = value if isinstance(value, bytes) else value.encode()
        procs[case] = subprocess.Popen(
            [sys.executable, "-m", "scaler", "config", "--check"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        variable = NASTY_COMMANDS[case][0]
        text = err.decode("utf-8", "backslashreplace")
        assert proc.returncode == EXIT_CONFIG, (case, proc.returncode, text)
        assert out == b"", case
        assert "Traceback" not in text, text
        lines = text.splitlines()
        assert lines and all(line.startswith(f"scaler: {variable}: ") for line in lines), (
            case,
            lines,
        )


def test_config_without_check_prints_the_table_even_in_a_bad_environment() -> None:
    """Plain ``scaler config`` documents the settings; it does not validate (``--check`` does)."""
    captured = io.StringIO()
    with environment({"SCALER_CONCURRENCY": "lots"}), contextlib.redirect_stdout(captured):
        assert main(["config"]) == 0
    assert all(f"`{name}`" in captured.getvalue() for name in KNOWN)


# --- gaps the fuzzer found, now refused ------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400"])
def test_infinite_seconds_are_refused(value: str) -> None:
    problems = problems_of({"SCALER_CLUSTER": "prod", "SCALER_STUCK_AFTER": value})
    assert problems is not None and problems[0].startswith("SCALER_STUCK_AFTER: ")


@pytest.mark.parametrize("value", ["web=web", "web=a,web=b", "web=c,api=c", "web=api,api=c"])
def test_ambiguous_overflow_pairs_are_refused(value: str) -> None:
    problems = problems_of({"SCALER_CLUSTER": "prod", "SCALER_OVERFLOW_SERVICES": value})
    assert problems is not None and problems[0].startswith("SCALER_OVERFLOW_SERVICES: ")


@pytest.mark.parametrize("value", ["prod/", "arn:aws:ecs:us-east-1:123456789012:cluster/"])
def test_a_cluster_without_a_name_is_refused(value: str) -> None:
    problems = problems_of({"SCALER_CLUSTER": value})
    assert problems is not None and problems[0].startswith("SCALER_CLUSTER: ")
