"""The help teaches: every command says what it needs, every option says what it does."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from scaler.cli import COMMANDS, _parser
from scaler.sim.run import FIGURES, LEGEND, table


def parsers(
    parser: argparse.ArgumentParser, name: str = "scaler"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from parsers(sub, f"{name} {command}")


def test_every_option_and_command_has_help() -> None:
    seen = 0
    for name, parser in parsers(_parser()):
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help != argparse.SUPPRESS, f"{label} has no help"
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{name} {choice.dest} has no help"
            seen += 1
    assert seen > 15  # the walk reached the subcommands' options


def test_the_top_help_says_what_scaler_is_in_two_sentences() -> None:
    description = _parser().description or ""
    assert description.count(". ") + description.endswith(".") == 2, description
    assert "ECS" in description and "Spot" in description and "scaler config" in description


def test_each_command_says_what_it_needs() -> None:
    commands = dict(parsers(_parser()))
    assert set(COMMANDS) == {name.removeprefix("scaler ") for name in commands} - {"scaler"}
    for command in ("run", "snapshot", "plan"):
        text = commands[f"scaler {command}"].format_help()
        for needed in ("SCALER_CLUSTER", "AWS_REGION", "AWS_DEFAULT_REGION", "credentials"):
            assert needed in text.replace("\n", " "), (command, needed)
        assert "scaler config" in text, command
    assert "SCALER_QUEUE_URL" in commands["scaler run"].format_help()
    for command in ("demo", "simulate", "config"):
        description = commands[f"scaler {command}"].description or ""
        assert "Needs no" in description or "Needs nothing" in description, command


def test_the_simulate_table_gives_a_unit_and_a_legend_line_per_figure() -> None:
    assert set(LEGEND) == set(FIGURES)
    results = {figure: 1 for figure in FIGURES}
    text = table({"scenario": "s", "seed": 1, "results": {"scaler": results}})
    lines = text.splitlines()
    for figure in FIGURES:
        unit, meaning = LEGEND[figure]
        row = next(line for line in lines if line.startswith(f"{figure} "))
        assert unit in row
        assert f"  {figure}: {meaning}" in lines
