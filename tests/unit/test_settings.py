"""Settings: defaults, validation messages that name the variable, and the documented table."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scaler.settings import ConfigError, load_settings, settings_env, settings_table

SETTINGS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_CLUSTER", "arn:aws:ecs:us-east-1:123456789012:cluster/prod")
    settings = load_settings()
    assert settings.cluster_name == "prod"
    assert settings.concurrency == 10
    assert settings.dry_run is False
    assert settings.log_format == "json"


def test_every_problem_is_reported_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALER_CLUSTER", raising=False)
    monkeypatch.setenv("SCALER_CONCURRENCY", "lots")
    monkeypatch.setenv("SCALER_LOG_FORMAT", "xml")
    monkeypatch.setenv("SCALER_METRICS_PORT", "70000")
    monkeypatch.setenv("SCALER_QUEUE_URL", "not a url")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    names = sorted(line.split(":")[0] for line in caught.value.problems)
    assert names == [
        "SCALER_CLUSTER",
        "SCALER_CONCURRENCY",
        "SCALER_LOG_FORMAT",
        "SCALER_METRICS_PORT",
        "SCALER_QUEUE_URL",
    ]
    assert "SCALER_CLUSTER: required but not set" in caught.value.problems


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_CLUSTER", "prod")
    monkeypatch.setenv("SCALER_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_blank_cluster_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_CLUSTER", "   ")
    with pytest.raises(ConfigError, match="SCALER_CLUSTER"):
        load_settings()


def test_cli_exits_2_with_one_line_per_problem_and_no_traceback() -> None:
    env = {"PATH": "/usr/bin:/bin", "SCALER_CONCURRENCY": "0", "AWS_REGION": "us-east-1"}
    proc = subprocess.run(
        [sys.executable, "-m", "scaler", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "scaler: SCALER_CLUSTER: required but not set",
        "scaler: SCALER_CONCURRENCY: Input should be greater than or equal to 1 (got '0')",
    ]


def test_run_without_a_queue_names_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "SCALER_CLUSTER": "prod", "AWS_REGION": "us-east-1"}
    proc = subprocess.run(
        [sys.executable, "-m", "scaler", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "scaler: SCALER_QUEUE_URL: required by `scaler run` but not set"


def test_run_without_a_region_names_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "SCALER_CLUSTER": "prod", "SCALER_QUEUE_URL": "http://q"}
    proc = subprocess.run(
        [sys.executable, "-m", "scaler", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "AWS_REGION" in proc.stderr and "Traceback" not in proc.stderr


def test_config_table_lists_every_setting_with_a_description() -> None:
    table = settings_table()
    rows = [r for r in table.splitlines() if r.startswith("| `SCALER_")]
    assert len(rows) == len(load_settings.__globals__["Settings"].model_fields)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 4 and all(cells), row


def test_docs_settings_table_is_the_config_output() -> None:
    text = SETTINGS_PAGE.read_text()
    match = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert match, "docs/settings.md needs the settings table between settings markers"
    assert match.group(1) == settings_table(), (
        "docs/settings.md settings table is stale: run scripts/docs-settings"
    )


def test_an_on_demand_mix_needs_groups_and_fits_the_cap() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(cluster="c", queue_url="http://q", on_demand_percent=20)
    assert raised.value.problems == [
        "SCALER_ON_DEMAND_PERCENT: Value error, needs on-demand groups to launch in "
        "(SCALER_ON_DEMAND_POOLS or SCALER_ON_DEMAND_TEMPLATES) (got 20)"
    ]
    with pytest.raises(ConfigError) as raised:
        load_settings(
            cluster="c",
            queue_url="http://q",
            on_demand_pools="od",
            max_on_demand=2,
            on_demand_base=3,
        )
    assert raised.value.problems == [
        "SCALER_ON_DEMAND_BASE: Value error, must be at most SCALER_MAX_ON_DEMAND (2) (got 3)"
    ]
    ok = load_settings(cluster="c", queue_url="http://q", on_demand_pools="od", on_demand_base=2)
    assert (ok.on_demand_base, ok.on_demand_percent) == (2, 0)


def test_a_lease_margin_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(cluster="c", queue_url="http://q", lease_duration=10, lease_margin=10)
    (problem,) = raised.value.problems
    assert problem.startswith("SCALER_LEASE_MARGIN:")
    assert "at most half of SCALER_LEASE_DURATION" in problem


@pytest.mark.parametrize(
    ("name", "value"),
    [("roll", True), ("migrate_spot_fleets", "sfr-1")],
)
def test_scaling_in_needs_groups_of_the_scalers_own(name: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(cluster="c", queue_url="http://q", **{name: value})
    (problem,) = raised.value.problems
    assert problem.startswith(f"SCALER_{name.upper()}: Value error, needs the scaler's own groups")
    ok = load_settings(cluster="c", queue_url="http://q", spot_pools="spot-a", **{name: value})
    assert getattr(ok, name) in (True, ("sfr-1",))


def test_consolidation_is_on_by_default_and_gives_back_only_the_scalers_own_groups() -> None:
    assert load_settings(cluster="c", queue_url="http://q").consolidate
    assert load_settings(cluster="c", queue_url="http://q", consolidate=True).consolidate
    assert load_settings(cluster="c", queue_url="http://q", spot_pools="spot-a").consolidate
    assert not load_settings(cluster="c", queue_url="http://q", consolidate=False).consolidate


def test_spot_fleets_to_migrate_are_request_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_SPOT_POOLS", "spot-a")
    monkeypatch.setenv("SCALER_MIGRATE_SPOT_FLEETS", " sfr-1 , sfr-2 ")
    assert load_settings(cluster="c", queue_url="http://q").migrate_spot_fleets == (
        "sfr-1",
        "sfr-2",
    )
    monkeypatch.setenv("SCALER_MIGRATE_SPOT_FLEETS", "sfr-1,fleet-2")
    with pytest.raises(ConfigError) as raised:
        load_settings(cluster="c", queue_url="http://q")
    (problem,) = raised.value.problems
    assert problem.startswith("SCALER_MIGRATE_SPOT_FLEETS: Value error, 'fleet-2' is not a Spot")


def test_template_pools_are_pool_template_pairs_with_unique_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCALER_SPOT_TEMPLATES", "spot-a=lt-0123, spot-b = ecs-node")
    monkeypatch.setenv("SCALER_ON_DEMAND_TEMPLATES", "od=lt-0456")
    monkeypatch.setenv("SCALER_FLEET_INSTANCE_TYPES", "m5.large,m6i.large")
    ok = load_settings(cluster="c", queue_url="http://q", on_demand_percent=20)
    assert ok.spot_templates == {"spot-a": "lt-0123", "spot-b": "ecs-node"}
    assert ok.fleet_instance_types == ("m5.large", "m6i.large")
    for bad, says in [("spot-a", "is not pool=launch-template"), ("spot-a=lt-9", "already named")]:
        monkeypatch.setenv("SCALER_ON_DEMAND_TEMPLATES", bad)
        with pytest.raises(ConfigError) as raised:
            load_settings(cluster="c", queue_url="http://q")
        (problem,) = raised.value.problems
        assert problem.startswith("SCALER_ON_DEMAND_TEMPLATES: Value error") and says in problem
    monkeypatch.setenv("SCALER_ON_DEMAND_TEMPLATES", "od=lt-1")
    monkeypatch.setenv("SCALER_SPOT_POOLS", "od")
    with pytest.raises(ConfigError):
        load_settings(cluster="c", queue_url="http://q")


def test_config_check_lines_paste_back_to_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = {
        "SCALER_CLUSTER": "prod",
        "SCALER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events",
        "SCALER_SPOT_POOLS": "spot-a, spot-b",
        "SCALER_SPOT_TEMPLATES": "t1=lt-0abc,t2=my template",
        "SCALER_OVERFLOW_SERVICES": "web=web-fargate",
        "SCALER_LOG_LEVEL": "debug",
        "SCALER_DRY_RUN": "1",
        "SCALER_DRAIN_BATCH_WINDOW": "0.1",
    }
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    loaded = load_settings()
    lines = settings_env(loaded).splitlines()
    assert "SCALER_SPOT_POOLS=spot-a,spot-b" in lines
    assert "SCALER_SPOT_TEMPLATES='t1=lt-0abc,t2=my template'" in lines
    assert "SCALER_OVERFLOW_SERVICES=web=web-fargate" in lines
    assert "SCALER_ON_DEMAND_POOLS=" in lines and "SCALER_LEASE_TABLE=" in lines
    assert "SCALER_DRY_RUN=true" in lines and "SCALER_LOG_LEVEL=DEBUG" in lines
    for name in given:
        monkeypatch.delenv(name)
    for token in shlex.split("\n".join(lines)):
        name, _, value = token.partition("=")
        monkeypatch.setenv(name, value)
    assert load_settings() == loaded


def test_an_empty_optional_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_CLUSTER", "prod")
    monkeypatch.setenv("SCALER_QUEUE_URL", "")
    monkeypatch.setenv("SCALER_LEASE_TABLE", " ")
    loaded = load_settings()
    assert (loaded.queue_url, loaded.lease_table) == (None, None)
