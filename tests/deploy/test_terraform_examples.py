"""The Terraform examples (deploy/terraform/examples/*) call the module as it is.

Parsed with python-hcl2 like the module itself (no ``terraform`` binary, no provider, no
network): each example's ``module`` blocks point at the module, pass only variables it declares
and every one it requires; the many-clusters example iterates over a map of clusters with
``for_each``. Where ``terraform`` is installed, ``terraform fmt -check`` runs on each example
(offline; ``terraform validate`` needs the provider downloaded, so it is not run here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scaler.settings import ENV_PREFIX, load_settings
from tests.deploy.test_terraform import MODULE, locals_, parsed, variables

EXAMPLES = sorted(p for p in (MODULE / "examples").iterdir() if p.is_dir())


def _calls(example: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(example.glob("*.tf")):
        for block in parsed(path).get("module", []):
            found.update(block)
    return found


def test_there_is_a_many_clusters_example() -> None:
    assert MODULE / "examples/many-clusters" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_an_example_calls_the_module_with_its_variables(example: Path) -> None:
    calls = _calls(example)
    assert calls, f"{example.name} calls no module"
    declared = variables()
    required = {name for name, body in declared.items() if "default" not in body}
    meta = {"source", "for_each", "count", "depends_on", "providers"}
    for name, call in calls.items():
        assert (example / call["source"]).resolve() == MODULE.resolve(), name
        passed = set(call) - meta
        assert passed - set(declared) == set(), f"{name}: not variables of the module"
        assert required - passed == set(), f"{name}: required variables not passed"


def test_many_clusters_is_one_definition_for_each_cluster() -> None:
    example = MODULE / "examples/many-clusters"
    (call,) = _calls(example).values()
    assert call["for_each"] == "${var.clusters}"
    assert call["cluster_name"] == "${each.key}"
    declared = parsed(example / "main.tf")["variable"]
    (clusters,) = [b["clusters"] for b in declared if "clusters" in b]
    assert clusters["type"].startswith("${map(object(")
    assert len(clusters["default"]) >= 2, "the example shows more than one cluster"
    outputs = {name for block in parsed(example / "main.tf")["output"] for name in block}
    assert {"queue_urls", "service_names"} <= outputs


def _example() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The many-clusters example's clusters (its default map) and shared environment."""
    document = parsed(MODULE / "examples/many-clusters/main.tf")
    (clusters,) = [b["clusters"]["default"] for b in document["variable"] if "clusters" in b]
    (shared,) = [b["shared_environment"] for b in document["locals"] if "shared_environment" in b]
    return clusters, shared


def _environment(name: str, cluster: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    """A cluster's scaler environment as the module builds it: ``named_environment`` over
    ``extra_environment`` (the queue URL and lease table made up)."""
    services = cluster.get("overflow_services", {})
    return {
        **extra,
        "SCALER_CLUSTER": name,
        "SCALER_QUEUE_URL": f"https://sqs.eu-west-1.amazonaws.com/123456789012/scaler-{name}",
        "SCALER_SPOT_POOLS": ",".join(cluster.get("spot_pools", [])),
        "SCALER_ON_DEMAND_POOLS": ",".join(cluster.get("on_demand_pools", [])),
        "SCALER_OVERFLOW_SERVICES": ",".join(f"{s}={c}" for s, c in services.items()),
        "SCALER_DRY_RUN": str(cluster.get("dry_run", True)).lower(),
        "SCALER_LEASE_TABLE": f"scaler-{name}-lease",
    }


def test_each_example_cluster_passes_the_modules_checks_and_the_scalers() -> None:
    (cluster_check,) = variables()["cluster_name"]["validation"]
    pattern = re.search(r'regex\("(.*?)", var\.cluster_name', cluster_check["condition"])
    assert pattern, cluster_check["condition"]
    _, reserved_check = variables()["extra_environment"]["validation"]
    reserved = set(re.findall(r'"(SCALER_[A-Z_]+)"', reserved_check["condition"]))
    named = {k for k in locals_()["named_environment"] if k.startswith(ENV_PREFIX)}
    assert reserved == named, "the module refuses in extra_environment what it sets itself"
    clusters, shared = _example()
    for name, cluster in clusters.items():
        assert re.fullmatch(pattern.group(1), name), name
        extra = {**shared, **cluster.get("extra_environment", {})}
        assert all(re.fullmatch(r"SCALER_[A-Z0-9_]+", k) for k in extra), name
        assert not set(extra) & reserved, f"{name}: sets what the module sets"
        environment = _environment(name, cluster, extra)
        assert set(environment) >= named
        with pytest.MonkeyPatch.context() as env:
            for variable in [v for v in os.environ if v.startswith(ENV_PREFIX)]:
                env.delenv(variable)
            for variable, value in environment.items():
                env.setenv(variable, value)
            settings = load_settings()  # a ConfigError names the bad setting
        assert settings.cluster_name == name


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary")
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_terraform_fmt_accepts_the_example(example: Path) -> None:
    reply = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "."],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reply.returncode == 0, reply.stdout
