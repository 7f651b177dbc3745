"""The Prometheus rules and the Grafana dashboard against promtool and the real metrics.

- the rules load (``promtool check rules``) and their unit tests pass (``promtool test rules``);
- every alert has a unit test and a runbook section;
- every ``scaler_*`` name in the rules and the dashboard is one ``scaler.metrics.Metrics``
  exposes, with label names it has, and the dashboard's queries parse;
- the ``/metrics`` of a running ``scaler run`` passes ``promtool check metrics``.

promtool comes from the ``prometheus`` package (Debian/Ubuntu); without it these tests skip,
unless ``SCALERTEST_REQUIRE_TOOLS=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from scaler import testbed
from scaler.aws.retry import THROTTLING_CODES
from scaler.guard import RISK_CAUSES
from scaler.metrics import EVENT_OUTCOMES, QUEUES, Metrics
from tests.e2e.test_run_process import _get, scaler_process

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "scaler-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "scaler-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "scaler-dashboard.json"
RUNBOOK = ROOT / "docs" / "alerts.md"

NAME = re.compile(r"\bscaler_[a-z_]+\b")
# a metric name followed by its label matchers: scaler_x{a="1", b=~"2|3"}
SELECTOR = re.compile(r"\b(scaler_[a-z_]+)\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
# labels Prometheus adds to every scraped series, and the histogram bucket label
TARGET_LABELS = {"job", "instance", "le"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("SCALERTEST_REQUIRE_TOOLS") == "1":
            pytest.fail("promtool not found: scripts/test installs it")
        pytest.skip("promtool not found (apt-get install prometheus)")
    return path


def run_promtool(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> tuple[int, str]:
    done = subprocess.run(
        [promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


# -- what the registry exposes ---------------------------------------------------------------


def exposed() -> dict[str, set[str]]:
    """Every sample name a fresh registry exposes -> the label names of its metric.

    Labelled metrics have no samples until first used, so names come from each family's type:
    a counter ``x`` is exposed as ``x_total``, a histogram as ``x_bucket``/``x_sum``/``x_count``.
    """
    metrics = Metrics()
    # the label names of the metrics Metrics keeps as attributes (all but scaler_build_info)
    declared = {
        m._name: set(m._labelnames) for m in vars(metrics).values() if hasattr(m, "_labelnames")
    }
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        sampled = {label for sample in family.samples for label in sample.labels} - {"le"}
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names[family.name + suffix] = declared.get(family.name, sampled)
    return names


def family_names() -> set[str]:
    return {family.name for family in Metrics().registry.collect()}


# -- the files ---------------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    dash = dashboard()
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, so Prometheus can parse it."""
    expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
    # label_values(metric, label) is Grafana's, not PromQL: its metric is what must exist
    match = re.fullmatch(r"label_values\((.+),\s*\w+\)", expr)
    return match.group(1) if match else expr


def all_exprs() -> list[tuple[str, str]]:
    found = [(f"rule {r.get('alert') or r.get('record')}", str(r["expr"])) for r in rules()]
    return found + [("dashboard", e) for e in dashboard_exprs()]


# -- rules -------------------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    code, out = run_promtool("check", "rules", str(RULES))
    assert code == 0, out
    assert "SUCCESS" in out


def test_rule_unit_tests_pass() -> None:
    code, out = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert code == 0, out
    assert "SUCCESS" in out


def test_every_alert_is_well_formed_tested_and_has_a_runbook() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in alerts().items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/alerts.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section in docs/alerts.md"
        assert name in fired, f"{name}: no test where it fires"
        assert name in quiet, f"{name}: no test where it stays quiet"


JOIN = "* on (job, instance) group_left (cluster) scaler_info"
NOT_JOINED = {"ScalerDown", "ScalerAbsent"}  # on `up`: an unreachable scaler has no scaler_info


def test_alerts_on_the_scalers_metrics_carry_its_cluster() -> None:
    for name, rule in alerts().items():
        if name not in NOT_JOINED:
            expr = " ".join(str(rule["expr"]).split())
            assert JOIN in expr or expr.endswith(JOIN), name


# -- names and labels --------------------------------------------------------------------------


@pytest.mark.parametrize("where,expr", all_exprs())
def test_exprs_use_only_exposed_metrics_and_labels(where: str, expr: str) -> None:
    names = exposed()
    for name in NAME.findall(expr):
        assert name in names, f"{where}: {name} is not exposed by scaler.metrics.Metrics"
    for name, matchers in SELECTOR.findall(expr):
        for label, _, _ in MATCHER.findall(matchers):
            assert label in names[name] | TARGET_LABELS, f"{where}: {name} has no label {label}"


def test_prose_mentions_only_real_metrics() -> None:
    """Annotations, panel descriptions and the runbook may name a family or a sample."""
    known = set(exposed()) | family_names()
    for path in (RULES, DASHBOARD, RUNBOOK):
        unknown = set(NAME.findall(path.read_text())) - known
        assert not unknown, f"{path.name}: {sorted(unknown)}"


def label_values(metric: str, label: str) -> set[str]:
    """Every value the rules and dashboard match ``label`` of ``metric`` against."""
    values: set[str] = set()
    for _, expr in all_exprs():
        for name, matchers in SELECTOR.findall(expr):
            for key, op, value in MATCHER.findall(matchers):
                if name == metric and key == label and op in ("=", "=~"):
                    values |= set(value.split("|"))
    return values


def test_label_values_are_ones_the_code_sets() -> None:
    assert label_values("scaler_events_total", "outcome") <= set(EVENT_OUTCOMES)
    assert label_values("scaler_drain_risk_services", "cause") <= set(RISK_CAUSES)
    assert label_values("scaler_queue_messages", "queue") <= set(QUEUES)
    assert label_values("scaler_queue_messages", "state") <= {"visible", "in_flight"}
    throttled = label_values("scaler_aws_calls_total", "outcome") - {"ok"}
    assert throttled == set(THROTTLING_CODES), "the throttling regex must follow retry.py"


def test_dashboard_is_a_grafana_dashboard() -> None:
    dash = dashboard()
    assert dash["uid"] == "scaler"
    assert dash["title"] == "scaler"
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for panel in panels(dash):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Prometheus parses the queries, loaded as recording rules."""
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": as_promql(e)}
                    for i, e in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(recording))
    code, out = run_promtool("check", "rules", str(path))
    assert code == 0, out


# -- the live exposition -----------------------------------------------------------------------


@pytest.mark.slow
def test_live_metrics_pass_promtool_check_metrics(local_aws: testbed.LocalAws) -> None:
    tool = promtool()
    nodes = testbed.create_cluster(local_aws, "prod", size=2)
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    bodies = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes] + ["not json"]
    testbed.send_raw(local_aws, queues.url, bodies)
    with scaler_process(local_aws, queues.url) as proc:
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline:
            status, metrics = _get(proc.base_url + "/metrics")
            assert status == 200
            if 'outcome="handled"} 2.0' in metrics and 'outcome="malformed"' in metrics:
                break
            time.sleep(0.2)
    # labelled families (events, drain latency, AWS calls) have samples, not only HELP lines
    assert "scaler_interruption_to_drain_seconds_bucket{" in metrics
    assert 'scaler_events_total{kind="unknown",outcome="malformed"}' in metrics
    # the queues' depths, the info metric, call latency and runtime metrics
    assert 'scaler_queue_messages{queue="dead_letter",state="visible"}' in metrics
    assert 'scaler_info{cluster="prod"' in metrics
    assert 'scaler_aws_call_seconds_bucket{le="0.01",operation="ReceiveMessage"' in metrics
    assert "process_resident_memory_bytes" in metrics and "python_gc_objects_collected" in metrics
    done = subprocess.run(
        [tool, "check", "metrics"],
        input=metrics,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = done.stdout + done.stderr
    assert done.returncode == 0, problems
    assert problems.strip() == "", problems
