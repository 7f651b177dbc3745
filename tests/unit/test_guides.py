"""The migration and many-clusters guides name only what exists.

Every ``SCALER_*`` setting, ``scaler_*`` metric, ``scaler <command>``, ``scaler:*`` tag and
quoted log message (written `` `"message"` ``) in the guides must be found in the code: a guide
that names a setting the scaler does not read is worse than none. ``scaler_info`` (the info
metric carrying the cluster label) is allowed by name: it is added beside these guides.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from scaler.cli import COMMANDS
from scaler.metrics import Metrics
from scaler.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [
    ROOT / "docs/migrate-from-spot-fleet.md",
    ROOT / "docs/migrate-from-homegrown.md",
    ROOT / "docs/many-clusters.md",
]
ALLOWED_METRICS = {"scaler_info"}
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+)`")


def _text(path: Path) -> str:
    return path.read_text()


@cache
def _metric_names() -> frozenset[str]:
    """Every family and sample name the scaler exposes (counters with ``_total``, histograms
    with ``_bucket``, ``_sum`` and ``_count``)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
    return frozenset(names)


@cache
def _source() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "scaler").rglob("*.py")))


def settings_named(text: str) -> set[str]:
    return set(re.findall(rf"\b{ENV_PREFIX}[A-Z][A-Z0-9_]*\b", text))


def metrics_named(text: str) -> set[str]:
    return set(re.findall(r"\bscaler_[a-z][a-z0-9_]*\b", text))


def commands_named(text: str) -> set[str]:
    """``scaler X`` at the start of a code span or of a command line in a code block."""
    code = [s for s in _SPAN.findall(_FENCE.sub("", text))]
    for block in _FENCE.findall(text):
        code += [line.strip().removeprefix("$ ") for line in block.splitlines()[1:-1]]
    found = set()
    for line in code:
        match = re.match(r"(?:python -m )?scaler ([a-z][a-z-]*)\b", line)
        if match:
            found.add(match.group(1))
    return found


def tags_named(text: str) -> set[str]:
    return set(re.findall(r"\bscaler:[a-z][a-z_-]*", text))


def messages_named(text: str) -> set[str]:
    return set(re.findall(r'`"([^"`]+)"`', text))


def test_the_guides_exist_and_say_something() -> None:
    for path in GUIDES:
        assert path.exists(), path.name
        assert len(_text(path)) > 2000, path.name


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_setting_named_exists(path: Path) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    named = settings_named(_text(path))
    assert named, "a guide names the settings it uses"
    assert named - known == set()


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_metric_named_exists(path: Path) -> None:
    named = metrics_named(_text(path))
    assert named - _metric_names() - ALLOWED_METRICS == set()


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_command_named_exists(path: Path) -> None:
    assert commands_named(_text(path)) - set(COMMANDS) == set()


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_tag_and_log_message_named_is_in_the_code(path: Path) -> None:
    text = _text(path)
    for name in tags_named(text) | messages_named(text):
        assert name in _source(), name


def test_the_checks_catch_what_does_not_exist() -> None:
    text = (
        "`SCALER_NO_SUCH` `scaler_no_such_total` `scaler frobnicate --now`\n"
        '```\n$ scaler plan --json\nscaler nothing\n```\n`"no such message"` `scaler:nope`'
    )
    assert settings_named(text) == {"SCALER_NO_SUCH"}
    assert metrics_named(text) == {"scaler_no_such_total"}
    assert commands_named(text) == {"frobnicate", "plan", "nothing"}
    assert "scaler_no_such_total" not in _metric_names()
    assert "scaler_events_total" in _metric_names()
    assert messages_named(text) == {"no such message"}
    assert "no such message" not in _source()
    assert tags_named(text) == {"scaler:nope"}


def _yaml_blocks() -> list[str]:
    return [b for p in GUIDES for b in re.findall(r"^```yaml\n(.*?)^```", _text(p), re.M | re.S)]


def test_every_yaml_example_parses() -> None:
    blocks = _yaml_blocks()
    assert len(blocks) >= 3, "the Prometheus and Datadog examples"
    for block in blocks:
        assert isinstance(yaml.safe_load(block), dict), block


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")
def test_promtool_accepts_the_prometheus_examples(tmp_path: Path) -> None:
    configs = [b for b in _yaml_blocks() if "scrape_configs" in b]
    assert configs
    for index, block in enumerate(configs):
        path = tmp_path / f"prometheus-{index}.yml"
        path.write_text(block)
        reply = subprocess.run(
            ["promtool", "check", "config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert reply.returncode == 0, reply.stdout + reply.stderr
