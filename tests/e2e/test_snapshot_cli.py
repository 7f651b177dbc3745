"""`scaler snapshot` from the command line, against the local AWS, then simulated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scaler import testbed


def test_snapshot_writes_a_scenario_that_simulates(
    local_aws: testbed.LocalAws, tmp_path: Path
) -> None:
    testbed.create_cluster(local_aws, "prod", size=4)
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "a", "image": "x", "cpu": 256, "memory": 512}]
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=6)
    out = tmp_path / "prod.toml"
    env = {
        **os.environ,
        "SCALER_CLUSTER": "prod",
        "AWS_REGION": testbed.REGION,
        "AWS_ENDPOINT_URL": local_aws.endpoint,
    }
    subprocess.run(
        [sys.executable, "-m", "scaler", "snapshot", "--out", str(out), "--hours", "0.5"],
        env=env,
        check=True,
        timeout=60,
    )
    assert 'name = "prod"' in out.read_text()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler",
            "simulate",
            "--scenario",
            str(out),
            "--policy",
            "scaler",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert '"scenario": "prod"' in proc.stdout
