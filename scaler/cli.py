"""The ``scaler`` command.

Subcommands: ``run`` (the service), ``demo`` (the service against an embedded local AWS),
``simulate`` (policies compared on a simulated cluster), ``snapshot`` (a scenario file from the
live cluster, read-only), ``plan`` (what the planners would do now, read-only), ``config`` (the
settings table, or ``--check`` the current environment). Each command's ``--help`` says what it
needs. Mistakes exit with status 2 and one ``scaler: ...`` line per problem, naming the variable,
the option or the place in a scenario file, and what to do: argparse's usage text is left to
``--help``. AWS problems (no credentials, an endpoint that cannot be reached, a cluster that does
not exist, an action the role may not take...) are told apart in :mod:`scaler.aws.errors` and end
the same way: one line, status 2, or 1 when the cause is outside the user's control (AWS failing
or throttling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from scaler import __version__, logs
from scaler.aws.clients import AwsTarget
from scaler.aws.errors import AwsFailure, Context, checked
from scaler.settings import (
    AwsEnv,
    ConfigError,
    LogFormat,
    Settings,
    load_aws_env,
    load_settings,
    require_region,
    settings_env,
    settings_table,
)

if TYPE_CHECKING:
    from scaler.sim.scenario import Scenario

EXIT_CONFIG = 2
BUILTINS: tuple[str, ...] = ("steady", "storm", "az-outage", "deploy-skew", "diurnal", "ami-roll")
BUILTINS += ("fleet-250", "big-tasks")  # scaler.sim.builtin_fleet
BUILTINS += ("az-storm", "long-lead", "dry-market")  # scaler.sim.builtin_market
BUILTINS += ("skew", "skew-surge", "skew-mix")  # scaler.sim.builtin_skew
POLICY_NAMES = ("scaler", "ecs-native", "ecs-scaler")  # --policy all
EXTRA_POLICIES = ("oracle",)  # the scaler told of every interruption 15 minutes ahead
# names of former variants of the scaler, now settings: what to run instead
RETIRED_POLICIES = {
    "scaler-consolidating": "SCALER_CONSOLIDATE=true scaler simulate --policy scaler",
    "scaler-rolling": "SCALER_ROLL=true scaler simulate --policy scaler",
    "scaler-shipped": "scaler simulate --policy scaler",
}


ABOUT = (
    "scaler keeps an Amazon ECS cluster on EC2 Spot available and cheap: it drains instances "
    "before Spot takes them back, tops up lost capacity (falling back to on-demand and back), "
    "and can rebalance tasks, roll new images and consolidate. It runs as a service fed with "
    "EC2 and ECS events through an SQS queue, is configured with SCALER_* environment variables "
    "(`scaler config` lists them), and can be tried without AWS (`scaler demo`, "
    "`scaler simulate`)."
)
AWS_NEEDS = (
    "Also needs a region (AWS_REGION or AWS_DEFAULT_REGION) and AWS credentials from the "
    "standard chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the task's IAM "
    "role); AWS_ENDPOINT_URL, if set, sends every call there."
)
SEE_CONFIG = "`scaler config` lists every setting; `scaler config --check` checks the environment."
COMMANDS: dict[str, tuple[str, str]] = {  # name -> (one line, what it needs)
    "run": (
        "consume events from SQS and act on them (the service)",
        "Needs SCALER_CLUSTER (the ECS cluster) and SCALER_QUEUE_URL (the SQS queue EventBridge "
        f"delivers to). {AWS_NEEDS} Start with SCALER_DRY_RUN=true: every action is logged and "
        f"counted, nothing is changed. {SEE_CONFIG}",
    ),
    "demo": (
        "run against an embedded local AWS: a spot storm on a small cluster",
        "Needs nothing: no AWS account, no credentials, no settings. Prints a timeline of what "
        "the scaler does: drains at spot notices, an on-demand top-up and, once spot is "
        "quiet, the return to spot; and the fate of test messages put on its queue (another "
        "cluster's event sent twice, a malformed body). The summary explains the availability "
        "figure, service by service. Ends by itself in under a minute; exit status 1 if a task "
        "was lost with its instance.",
    ),
    "simulate": (
        "compare policies on a simulated cluster",
        "Needs nothing: no AWS, no settings. Runs a built-in scenario or a scenario file (TOML or "
        "JSON, see scenarios/example.toml; `scaler snapshot` writes one from a live cluster) "
        "under each policy and prints the figures side by side. The scaler simulated is the "
        "one `scaler run` builds, configured by the scenario's [settings] and by any SCALER_* "
        "variables set (e.g. SCALER_ROLL=true); the baselines are models.",
    ),
    "snapshot": (
        "write a scenario file from the live cluster (read-only)",
        f"Needs SCALER_CLUSTER. {AWS_NEEDS} Only List, Describe and Get calls are made. "
        f"{SEE_CONFIG}",
    ),
    "plan": (
        "what drain, top-up and rebalance would do now (read-only)",
        "Needs SCALER_CLUSTER, and the pool settings `run` uses (SCALER_SPOT_POOLS and the "
        f"like). {AWS_NEEDS} Nothing is changed. {SEE_CONFIG}",
    ),
    "config": (
        "print every setting as a Markdown table, or check the environment",
        "Needs no AWS. Without options: every SCALER_* setting with its type, default and "
        "meaning. With --check: reads the SCALER_* environment as `run` does, names each "
        "problem, and prints the values in effect as VAR=value lines that can be pasted back.",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported in one line and status 2."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        sys.stderr.write(f"scaler: {message}; see `{self.prog} --help`\n")
        sys.exit(EXIT_CONFIG)


def _positive(unit: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive number of {unit} (got {text!r})")
        return value

    return parse


def _out(text: str) -> str:
    if text != "-" and not text.endswith((".toml", ".json")):
        raise argparse.ArgumentTypeError(
            f"{text!r} names no format: end it in .toml or .json (or give - for stdout)"
        )
    return text


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. 7)") from None


MAX_SEEDS = 1000


def _seeds(text: str) -> list[int]:
    """``1-20``, ``1,5,9`` or both (``1-3,7``): the seeds in the order given, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a list of seeds: give whole numbers and ranges, e.g. 1-20 "
                "or 1,5,9"
            ) from None
        if high < low:
            raise argparse.ArgumentTypeError(f"{part!r} is an empty range: write it low-high")
        seeds += [s for s in range(low, min(high, low + MAX_SEEDS) + 1) if s not in seeds]
        if len(seeds) > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_SEEDS} seeds")
    return seeds


def _command(sub: Any, name: str) -> argparse.ArgumentParser:
    brief, needs = COMMANDS[name]
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=brief, description=f"{brief[0].upper()}{brief[1:]}. {needs}"
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scaler", description=ABOUT)
    parser.add_argument("--version", action="version", version=f"scaler {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="command",
        help="one of these; `scaler COMMAND --help` says what it needs",
    )
    _command(sub, "run")
    demo = _command(sub, "demo")
    demo.add_argument(
        "--timeout",
        type=_positive("seconds"),
        default=60.0,
        help="give up after this many seconds (default 60)",
    )
    sim = _command(sub, "simulate")
    sim.add_argument(
        "--scenario",
        required=True,
        help=f"a built-in scenario ({', '.join(BUILTINS)}) or a scenario file (.toml or .json)",
    )
    sim.add_argument(
        "--policy",
        default="all",
        help="scaler (the controllers `scaler run` builds, in a simulated AWS, with the "
        "scenario's [settings] and the SCALER_* variables set, e.g. SCALER_CONSOLIDATE=true), "
        "ecs-native, ecs-scaler, oracle (the scaler told of every interruption 15 minutes "
        "ahead), or all (the first three; the default); several separated by commas, e.g. "
        "all,oracle",
    )
    seeding = sim.add_mutually_exclusive_group()
    seeding.add_argument(
        "--seed",
        type=_seed,
        default=7,
        help="seed of every random draw (the spot market's, and a built-in scenario's layout): "
        "the same seed gives the same figures (default 7)",
    )
    seeding.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="run on each of these seeds (1-20, or 1,5,9) and print per figure the mean, the "
        "worst seed and the paired difference to each baseline with its 95%% interval",
    )
    sim.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="write one JSON line per market event, signal and policy action to FILE",
    )
    sim.add_argument(
        "--hours",
        type=_positive("hours"),
        default=None,
        help="simulated hours, instead of the scenario's own length",
    )
    sim.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    snap = _command(sub, "snapshot")
    snap.add_argument(
        "--out",
        type=_out,
        default="-",
        help="file to write, TOML or JSON by its name (.toml or .json); - for JSON on stdout",
    )
    snap.add_argument(
        "--hours",
        type=_positive("hours"),
        default=2.0,
        help="the scenario's length in hours (default 2)",
    )
    plan = _command(sub, "plan")
    plan.add_argument("--json", action="store_true", help="print one JSON object, not text")
    config = _command(sub, "config")
    config.add_argument(
        "--check",
        action="store_true",
        help="check the SCALER_* environment and print the values in effect as VAR=value lines",
    )
    return parser


# `plan` and `snapshot` answer once: few retries, so an endpoint that cannot be reached is
# reported within seconds rather than after botocore's long retry schedule.
ONE_SHOT_ATTEMPTS = 3
ONE_SHOT_CONNECT_TIMEOUT = 3.0


def _one_shot_target(aws_env: AwsEnv) -> AwsTarget:
    return AwsTarget(
        region=require_region(aws_env),
        endpoint_url=aws_env.endpoint_url,
        max_attempts=ONE_SHOT_ATTEMPTS,
        connect_timeout=ONE_SHOT_CONNECT_TIMEOUT,
    )


def _context(settings: Settings, target: AwsTarget) -> Context:
    return Context(target.region, target.endpoint_url, settings.cluster)


def _run() -> int:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    aws = load_aws_env()
    target = AwsTarget(region=require_region(aws), endpoint_url=aws.endpoint_url)
    from scaler.loop import Scaler, run_until_signalled

    scaler = Scaler(settings, target)
    asyncio.run(checked(run_until_signalled(scaler), scaler.context))
    return 0


def _demo(timeout: float) -> int:
    from scaler.demo import run_demo

    logs.configure("WARNING", LogFormat.TEXT)
    return run_demo(timeout=timeout)


def _simulate(args: argparse.Namespace) -> int:
    from scaler.sim.run import SHIPPED, seeds_table, simulate, simulate_seeds, table

    policies = _policies(args.policy)

    def scenario_for(seed: int) -> Scenario:
        scenario = _scenario(args.scenario, seed)
        return scenario if args.hours is None else scenario.with_hours(args.hours)

    first = scenario_for(args.seeds[0] if args.seeds else args.seed)  # a bad file fails first
    environment = _scaler_environment(first) if set(policies) & set(SHIPPED) else {}
    with _trace(args.trace) as trace:
        if args.seeds:
            report = simulate_seeds(scenario_for, policies, args.seeds, trace, environment)
            print(json.dumps(report) if args.json else seeds_table(report))
        else:
            report = simulate(first, policies, args.seed, trace, environment)
            print(json.dumps(report) if args.json else table(report))
    return 0


def _scaler_environment(scenario: Scenario) -> dict[str, str]:
    """The ``SCALER_*`` variables the simulated scaler takes, checked with the scenario's
    ``[settings]`` as ``scaler run`` checks them (one line per problem); said on stderr, with
    those ignored because the simulated world sets them."""
    from scaler.sim.run import scaler_settings
    from scaler.sim.settings_file import environment_settings, settings_problems

    environment, ignored = environment_settings(os.environ)
    problems = settings_problems(scaler_settings(scenario, environment))
    if problems:
        raise ConfigError(problems)
    for name in ignored:
        print(f"{name}: ignored by scaler simulate (the simulated world sets it)", file=sys.stderr)
    if environment:
        given = " ".join(f"{k}={v}" for k, v in sorted(environment.items()))
        print(f"the simulated scaler runs with {given}", file=sys.stderr)
    return environment


def _policies(given: str) -> list[str]:
    """The policies ``--policy`` names: one, ``all``, or several separated by commas."""
    known = (*POLICY_NAMES, *EXTRA_POLICIES)
    policies: list[str] = []
    for name in (n.strip() for n in given.split(",")):
        if name in RETIRED_POLICIES:
            raise ConfigError(
                [f"--policy: {name!r} is no policy now; run {RETIRED_POLICIES[name]}"]
            )
        if name not in (*known, "all"):
            raise ConfigError(
                [
                    f"--policy: unknown policy {name!r}{_closest(name, [*known, 'all'])} "
                    f"(choose from {', '.join(known)} or all, or several separated by commas)"
                ]
            )
        for policy in POLICY_NAMES if name == "all" else (name,):
            if policy not in policies:
                policies.append(policy)
    return policies


@contextlib.contextmanager
def _trace(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    try:
        out = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ConfigError(
            [f"--trace: cannot write {path!r}: {exc.strerror or exc}; give a writable file"]
        ) from None
    with out:
        yield out


def _closest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _scenario(name: str, seed: int) -> Scenario:
    """A built-in scenario, or the file ``name``; a :class:`ConfigError` says what is wrong."""
    from pathlib import Path

    from scaler.sim import builtin as builtins
    from scaler.sim.scenario import ScenarioError, load

    if name in BUILTINS:
        return builtins.builtin(name, seed=seed)
    path = Path(name)
    if not path.is_file():
        raise ConfigError(
            [
                f"--scenario: {name!r} is neither a built-in ({', '.join(BUILTINS)}) nor a "
                f"file{_closest(name, list(BUILTINS))}"
            ]
        )
    try:
        return load(path)
    except ScenarioError as exc:
        raise ConfigError([f"{name}: {problem}" for problem in exc.problems]) from None


def _snapshot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scaler.aws.clients import AwsClients
    from scaler.metrics import Metrics
    from scaler.snapshot import render, snapshot

    settings = load_settings()
    target = _one_shot_target(load_aws_env())

    async def read() -> dict[str, object]:
        async with AwsClients(target, Metrics()) as aws:
            return await snapshot(aws, settings.cluster, hours=args.hours)

    data = asyncio.run(checked(read(), _context(settings, target)))
    text = render(data, "toml" if args.out.endswith(".toml") else "json")
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


def _plan(as_json: bool) -> int:
    from scaler.aws.clients import AwsClients
    from scaler.metrics import Metrics
    from scaler.planview import plan_now, render

    settings = load_settings()
    logs.configure("WARNING", LogFormat.TEXT)
    target = _one_shot_target(load_aws_env())

    async def read() -> dict[str, object]:
        async with AwsClients(target, Metrics()) as aws:
            return await plan_now(aws, settings)

    report = asyncio.run(checked(read(), _context(settings, target)))
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if as_json else render(report))
    return 0


def _config(check: bool) -> int:
    if not check:
        sys.stdout.write(settings_table())
        return 0
    sys.stdout.write(settings_env(load_settings()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run()
        if args.command == "demo":
            return _demo(args.timeout)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "snapshot":
            return _snapshot(args)
        if args.command == "plan":
            return _plan(args.json)
        return _config(args.check)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"scaler: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except AwsFailure as exc:
        print(f"scaler: {exc.problem.line}", file=sys.stderr)
        return exc.problem.status


if __name__ == "__main__":
    sys.exit(main())
