"""AWS-facing mistakes end in one line and a useful exit status, from the real command line.

Each case runs ``python -m scaler`` as a process against the local AWS, a closed loopback port or
the fault proxy (which answers with AWS's own error shapes), and checks the exit status, that
stderr holds exactly one ``scaler: <what is wrong>; <what to do>`` line per problem (besides
``scaler run``'s JSON logs), and that no traceback escapes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler import testbed
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.e2e.test_run_process import _free_port, _get

CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
READ_ONLY = (["plan"], ["snapshot", "--out", "-"])


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": testbed.REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask a metadata service off this machine
        "SCALER_CLUSTER": "prod",
        **extra,
    }


def _scaler(args: list[str], env: dict[str, str], limit: float = 60) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "scaler", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=limit,
    )
    return proc.returncode, proc.stderr


def _the_line(stderr: str) -> str:
    """The one problem line on stderr (JSON log lines aside); fails on a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("scaler: ") and "; " in lines[0], lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture
def denying(local_aws: testbed.LocalAws) -> Iterator[FaultProxy]:
    """The local AWS behind a proxy whose IAM refuses ecs:ListContainerInstances."""
    proxy = FaultProxy(local_aws.endpoint, [Fault("denied", "ecs:ListContainerInstances")])
    proxy.start().arm()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_no_credentials_says_how_to_provide_them(
    local_aws: testbed.LocalAws, tmp_path: Path, args: list[str]
) -> None:
    env = {k: v for k, v in _env(local_aws.endpoint).items() if k not in CREDENTIALS}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    status, stderr = _scaler(args, env)
    assert status == 2
    assert _the_line(stderr) == (
        "scaler: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        "AWS_PROFILE, or run with an IAM role (an ECS task role)"
    )


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_an_unreachable_endpoint_is_named_within_seconds(
    local_aws: testbed.LocalAws, args: list[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    status, stderr = _scaler(args, _env(url), limit=20)  # botocore's long retries would not fit
    assert status == 2
    assert _the_line(stderr) == (
        f"scaler: AWS_ENDPOINT_URL: cannot reach {url}; check the URL and that the endpoint "
        "is up, or unset AWS_ENDPOINT_URL"
    )


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_a_missing_cluster_names_the_variable(local_aws: testbed.LocalAws, args: list[str]) -> None:
    status, stderr = _scaler(args, _env(local_aws.endpoint, SCALER_CLUSTER="nope"))
    assert status == 2
    assert _the_line(stderr) == (
        "scaler: SCALER_CLUSTER: cluster 'nope' not found in us-east-1; set SCALER_CLUSTER to "
        "the name or ARN of an existing ECS cluster (or check AWS_REGION)"
    )


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_access_denied_names_the_iam_action(
    local_aws: testbed.LocalAws, denying: FaultProxy, args: list[str]
) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    status, stderr = _scaler(args, _env(denying.endpoint))
    assert status == 2
    assert _the_line(stderr) == (
        "scaler: access denied to ecs:ListContainerInstances; the scaler's task role needs "
        "ecs:ListContainerInstances (see deploy/iam)"
    )
    assert denying.injected["denied ecs:ListContainerInstances"] >= 1


# -- scaler run ------------------------------------------------------------------------------


def _run_env(endpoint: str, queue_url: str, port: int, **extra: str) -> dict[str, str]:
    return _env(
        endpoint,
        SCALER_QUEUE_URL=queue_url,
        SCALER_METRICS_HOST="127.0.0.1",
        SCALER_METRICS_PORT=str(port),
        SCALER_WAIT_TIME="1",
        **extra,
    )


def test_run_on_a_port_in_use_names_the_variable(local_aws: testbed.LocalAws) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        status, stderr = _scaler(["run"], _run_env(local_aws.endpoint, queues.url, port))
    assert status == 2
    assert _the_line(stderr) == (
        f"scaler: SCALER_METRICS_PORT: port {port} is already in use on 127.0.0.1; stop what "
        "listens there or set SCALER_METRICS_PORT to a free port (0 picks one)"
    )


@pytest.mark.parametrize(
    ("cluster", "queue", "expected"),
    [
        ("nope", "events", "scaler: SCALER_CLUSTER: cluster 'nope' not found in us-east-1; "),
        ("prod", "missing", "scaler: SCALER_QUEUE_URL: queue {url} does not exist; "),
    ],
    ids=["cluster", "queue"],
)
def test_run_refuses_what_does_not_exist_in_one_line(
    local_aws: testbed.LocalAws, cluster: str, queue: str, expected: str
) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    url = queues.url.replace("/events", f"/{queue}")
    env = _run_env(local_aws.endpoint, url, _free_port(), SCALER_CLUSTER=cluster)
    status, stderr = _scaler(["run"], env)
    assert status == 2
    assert _the_line(stderr).startswith(expected.format(url=url))


def test_run_access_denied_at_start_names_the_iam_action(local_aws: testbed.LocalAws) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    proxy = FaultProxy(local_aws.endpoint, [Fault("denied", "ecs:DescribeClusters")]).start()
    proxy.arm()
    try:
        env = _run_env(proxy.endpoint, queues.url, _free_port())
        status, stderr = _scaler(["run"], env)
    finally:
        proxy.stop()
    assert status == 2
    assert _the_line(stderr) == (
        "scaler: access denied to ecs:DescribeClusters; the scaler's task role needs "
        "ecs:DescribeClusters (see deploy/iam)"
    )


@pytest.mark.slow
def test_run_retries_an_unreachable_aws_then_names_it(local_aws: testbed.LocalAws) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    port = _free_port()
    env = _run_env(url, f"{url}/123456789012/events", port, SCALER_STARTUP_TIMEOUT="6")
    with subprocess.Popen(
        [sys.executable, "-m", "scaler", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            ready = _starting_readiness(f"http://127.0.0.1:{port}")
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert ready["reason"] == f"starting: AWS_ENDPOINT_URL: cannot reach {url}"
    assert isinstance(ready["checked_seconds_ago"], float)
    assert proc.returncode == 2
    assert _the_line(stderr) == (
        f"scaler: AWS_ENDPOINT_URL: cannot reach {url} (tried for 6s, SCALER_STARTUP_TIMEOUT); "
        "check the URL and that the endpoint is up, or unset AWS_ENDPOINT_URL"
    )


def _starting_readiness(base: str) -> dict[str, object]:
    """/readyz while the scaler keeps trying AWS (with /healthz answering 200 meanwhile)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status, body = _get(base + "/readyz")
        except OSError:
            time.sleep(0.1)
            continue
        answer: dict[str, object] = json.loads(body)
        if status == 503 and str(answer.get("reason", "")).startswith("starting: AWS_"):
            assert _get(base + "/healthz")[0] == 200
            return answer
        time.sleep(0.1)
    raise AssertionError("/readyz never said what could not be reached")


@pytest.mark.slow
def test_run_stops_at_once_on_sigterm_while_retrying(local_aws: testbed.LocalAws) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    port = _free_port()
    env = _run_env(url, f"{url}/123456789012/events", port, SCALER_STARTUP_TIMEOUT="60")
    with subprocess.Popen(
        [sys.executable, "-m", "scaler", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            _starting_readiness(f"http://127.0.0.1:{port}")
            proc.send_signal(signal.SIGTERM)
            # a try at start-up may last 10 s; SIGTERM must not wait for it
            _, stderr = proc.communicate(timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if not line.startswith("{")] == []
