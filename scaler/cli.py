"""The ``scaler`` command.

Subcommands: ``run`` (the service), ``demo`` (the service against an embedded local AWS),
``simulate`` (policies compared on a simulated cluster), ``snapshot`` (a scenario file from the
live cluster, read-only), ``plan`` (what the planners would do now, read-only), ``config`` (the
settings table, or ``--check`` the current environment). Configuration problems exit with status
2 and one line per problem, naming the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from scaler import __version__, logs
from scaler.aws.clients import AwsTarget, error_code
from scaler.settings import (
    ConfigError,
    LogFormat,
    load_aws_env,
    load_settings,
    require_region,
    settings_env,
    settings_table,
)

EXIT_CONFIG = 2
BUILTINS = ("steady", "storm", "az-outage", "deploy-skew", "diurnal", "ami-roll")
POLICY_NAMES = ("scaler", "ecs-native", "ecs-scaler")  # --policy all
# simulated only: scale-in by consolidation, rolling out-of-date instances
EXTRA_POLICIES = ("scaler-consolidating", "scaler-rolling")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaler", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scaler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consume events from SQS and act on them (the service)")
    demo = sub.add_parser("demo", help="run against an embedded local AWS and a scripted burst")
    demo.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    sim = sub.add_parser("simulate", help="compare policies on a simulated cluster")
    sim.add_argument(
        "--scenario", required=True, help=f"built-in ({', '.join(BUILTINS)}) or a file"
    )
    sim.add_argument(
        "--policy",
        default="all",
        help="scaler, ecs-native, ecs-scaler, scaler-consolidating, scaler-rolling or all "
        "(the first three)",
    )
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--hours", type=float, default=None, help="override the scenario's length")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    snap = sub.add_parser(
        "snapshot", help="write a scenario file from the live cluster (read-only)"
    )
    snap.add_argument("--out", default="-", help="file to write (.toml or .json); - for stdout")
    snap.add_argument("--hours", type=float, default=2.0, help="the scenario's length")
    plan = sub.add_parser("plan", help="what drain, top-up and rebalance would do now (read-only)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    config = sub.add_parser("config", help="print every setting as a Markdown table")
    config.add_argument("--check", action="store_true", help="validate the current environment")
    return parser


def _run() -> int:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    aws = load_aws_env()
    target = AwsTarget(region=require_region(aws), endpoint_url=aws.endpoint_url)
    from scaler.loop import Scaler, run_until_signalled

    asyncio.run(run_until_signalled(Scaler(settings, target)))
    return 0


def _demo(timeout: float) -> int:
    from scaler.demo import run_demo

    logs.configure("WARNING", LogFormat.TEXT)
    return run_demo(timeout=timeout)


def _simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scaler.sim import builtin as builtins
    from scaler.sim.run import simulate, table
    from scaler.sim.scenario import ScenarioError, load

    policies = list(POLICY_NAMES) if args.policy == "all" else [args.policy]
    if any(p not in (*POLICY_NAMES, *EXTRA_POLICIES) for p in policies):
        raise ConfigError(
            [
                f"--policy: unknown policy {args.policy!r} (choose from "
                f"{', '.join((*POLICY_NAMES, *EXTRA_POLICIES))} or all)"
            ]
        )
    if args.scenario in BUILTINS:
        scenario = builtins.builtin(args.scenario, seed=args.seed)
    else:
        path = Path(args.scenario)
        if not path.is_file():
            raise ConfigError(
                [
                    f"--scenario: {args.scenario!r} is neither a built-in "
                    f"({', '.join(BUILTINS)}) nor a file"
                ]
            )
        try:
            scenario = load(path)
        except ScenarioError as exc:
            raise ConfigError([f"--scenario: {exc}"]) from None
    if args.hours is not None:
        scenario = scenario.with_hours(args.hours)
    report = simulate(scenario, policies, args.seed)
    print(json.dumps(report) if args.json else table(report))
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scaler.aws.clients import AwsClients
    from scaler.metrics import Metrics
    from scaler.snapshot import render, snapshot

    settings = load_settings()
    aws_env = load_aws_env()
    target = AwsTarget(region=require_region(aws_env), endpoint_url=aws_env.endpoint_url)

    async def read() -> dict[str, object]:
        async with AwsClients(target, Metrics()) as aws:
            return await snapshot(aws, settings.cluster, hours=args.hours)

    data = asyncio.run(read())
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
    aws_env = load_aws_env()
    target = AwsTarget(region=require_region(aws_env), endpoint_url=aws_env.endpoint_url)

    async def read() -> dict[str, object]:
        async with AwsClients(target, Metrics()) as aws:
            return await plan_now(aws, settings)

    try:
        report = asyncio.run(read())
    except Exception as exc:
        if error_code(exc) == "ClusterNotFoundException":
            raise ConfigError([f"SCALER_CLUSTER: cluster {settings.cluster!r} not found"]) from None
        raise
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


if __name__ == "__main__":
    sys.exit(main())
