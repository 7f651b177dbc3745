"""The metrics table (docs/metrics.md) names every metric the code registers, and its label values.

Metric families are collected from :class:`scaler.metrics.Metrics`'s own registry, so a metric
added to the code without a line in docs/metrics.md fails here. Label values are the string literals
passed to ``.labels(...)`` anywhere in the package, plus the constant tuples the code sets
labelled gauges from (a label value computed elsewhere is not found this way).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from scaler.aws.retiring import REASONS
from scaler.guard import RISK_CAUSES
from scaler.metrics import EVENT_OUTCOMES, Metrics
from scaler.plan.capacity import ON_DEMAND, SPOT

ROOT = Path(__file__).resolve().parents[2]
METRICS_PAGE = (ROOT / "docs" / "metrics.md").read_text()
# label values named elsewhere than in their metric's row (the queue's outcomes, for one)
DOCS = "\n".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))


def _families() -> dict[str, str]:
    """Exposed name (counters with ``_total``) -> type, for every ``scaler_*`` family (the
    process and runtime families are prometheus_client's own, documented there)."""
    names = {}
    for family in Metrics().registry.collect():
        if not family.name.startswith("scaler_"):
            continue
        exposed = f"{family.name}_total" if family.type == "counter" else family.name
        names[exposed] = family.type
    return names


# Methods whose string arguments become label values (the actions' and AWS calls' counters).
HELPERS = ("_act", "_count")


def _texts(nodes: list[ast.expr]) -> list[str]:
    """The string literals among ``nodes``."""
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _exposed(collector: object) -> str:
    family = next(iter(collector.collect()))  # type: ignore[attr-defined]
    return f"{family.name}_total" if family.type == "counter" else str(family.name)


def _literal_label_values() -> set[tuple[str, str]]:
    """(label value, the metric it is passed to as a literal in ``.labels(...)``): the exposed
    name, or "" where the receiver is not a :class:`Metrics` attribute."""
    metrics = Metrics()
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "scaler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr in HELPERS:  # labels a metric with what it is given
                found |= {(text, "") for text in _texts(node.args)}
            if node.func.attr != "labels":
                continue
            receiver = node.func.value
            attr = receiver.attr if isinstance(receiver, ast.Attribute) else ""
            metric = _exposed(getattr(metrics, attr)) if hasattr(metrics, attr) else ""
            found |= {(text, metric) for text in _texts(node.args)}
    return found


def _row(metric: str) -> str:
    """The metrics table's line for ``metric``."""
    found = re.search(rf"^\| `{metric}` \|.*$", METRICS_PAGE, re.MULTILINE)
    return found.group(0) if found else ""


def test_every_registered_metric_is_in_the_metrics_table() -> None:
    families = _families()
    assert len(families) > 20  # the registry was read, not an empty one
    missing = [name for name in sorted(families) if f"| `{name}` |" not in METRICS_PAGE]
    assert not missing, f"metrics registered but not in docs/metrics.md's table: {missing}"


def test_the_metrics_table_names_no_metric_the_code_lacks() -> None:
    listed = set(re.findall(r"^\| `(scaler_\w+)` \|", METRICS_PAGE, re.MULTILINE))
    assert listed, "no metric rows found in docs/metrics.md"
    assert sorted(listed - set(_families())) == []


def test_label_values_the_code_uses_are_in_their_metrics_row() -> None:
    literals = _literal_label_values()
    assert {"add", "remove", "acquired", "surged"} <= {v for v, _ in literals}  # the scan works
    metrics = Metrics()
    wanted = [(value, metric) for value, metric in literals if metric]
    wanted += [(r, _exposed(metrics.retiring)) for r in REASONS]
    wanted += [(r, _exposed(metrics.capacity_changes)) for r in REASONS]
    wanted += [(c, _exposed(metrics.drain_risk_services)) for c in RISK_CAUSES]
    wanted += [(c, _exposed(metrics.capacity)) for c in (SPOT, ON_DEMAND)]
    missing = sorted((m, v) for v, m in wanted if f"`{v}`" not in _row(m))
    assert not missing, f"(metric, label value) used in the code, not in its row: {missing}"


def test_other_label_values_are_in_the_docs() -> None:
    literals = _literal_label_values()
    values = {v for v, metric in literals if not metric} | set(EVENT_OUTCOMES)
    missing = sorted(v for v in values if f"`{v}`" not in DOCS)
    assert not missing, f"label values used in the code but not in docs/: {missing}"
