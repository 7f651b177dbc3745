"""The Terraform examples (deploy/terraform/examples/*) call the module as it is.

Parsed with python-hcl2 like the module itself (no ``terraform`` binary, no provider, no
network): each example's ``module`` blocks point at the module, pass only variables it declares
and every one it requires; the many-clusters example iterates over a map of clusters with
``for_each``. Where ``terraform`` is installed, ``terraform fmt -check`` runs on each example
(offline; ``terraform validate`` needs the provider downloaded, so it is not run here).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_terraform import MODULE, parsed, variables

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
