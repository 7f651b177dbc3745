"""``scaler run`` as a real process against the local AWS: endpoints, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from scaler import testbed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@contextmanager
def scaler_process(aws: testbed.LocalAws, queue_url: str, **env: str) -> Iterator[Any]:
    port = _free_port()
    environ = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_REGION": testbed.REGION,
        "SCALER_CLUSTER": "prod",
        "SCALER_QUEUE_URL": queue_url,
        "SCALER_METRICS_PORT": str(port),
        "SCALER_METRICS_HOST": "127.0.0.1",
        "SCALER_WAIT_TIME": "1",
        **env,
    }
    # Logs go to a file: a pipe nobody reads until the end would fill up and block the process.
    with tempfile.TemporaryFile("w+") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scaler", "run"],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            text=True,
        )
        proc.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        proc.log_file = log_file  # type: ignore[attr-defined]
        try:
            _wait_until_serving(proc)
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_until_serving(proc: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"scaler exited early: {_read_log(proc)}")
        try:
            if _get(proc.base_url + "/readyz")[0] == 200:  # started (/healthz answers before)
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("scaler did not start serving")


def _logs(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _read_log(proc: Any) -> str:
    proc.log_file.seek(0)
    return str(proc.log_file.read())


def _terminate(proc: Any) -> tuple[float, str]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=35)
    return time.monotonic() - started, _read_log(proc)


@pytest.mark.slow
def test_run_serves_health_readiness_and_metrics(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    bodies = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes] + ["not json"]
    testbed.send_raw(local_aws, queues.url, bodies)
    with scaler_process(local_aws, queues.url) as proc:
        deadline = time.monotonic() + 20
        while testbed.queue_depth(local_aws, queues.dlq_url) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _get(proc.base_url + "/healthz") == (200, '{"status": "ok"}')
        status, body = _get(proc.base_url + "/readyz")
        assert status == 200
        ready = json.loads(body)
        assert ready["status"] == "ok"
        assert 0 <= ready["checked_seconds_ago"] < 30
        status, metrics = _get(proc.base_url + "/metrics")
        assert status == 200
        assert 'scaler_events_total{kind="spot_interruption",outcome="handled"} 3.0' in metrics
        assert 'scaler_events_total{kind="unknown",outcome="malformed"} 2.0' in metrics
        assert (
            'scaler_aws_calls_total{operation="ReceiveMessage",outcome="ok",service="sqs"}'
            in metrics
        )
        elapsed, stderr = _terminate(proc)
    assert proc.returncode == 0
    assert elapsed < 30
    assert testbed.queue_depth(local_aws, queues.dlq_url) == 1
    handled = [r for r in _logs(stderr) if r.get("outcome") == "handled"]
    assert {r["instance_ids"][0] for r in handled} == {n.instance_id for n in nodes}
    assert all({"time", "level", "message", "event_id"} <= r.keys() for r in handled)


@pytest.mark.slow
def test_sigterm_mid_burst_loses_nothing(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=20)
    queues = testbed.create_queues(local_aws, "events", max_receive=5, visibility=30)
    events = [testbed.spot_warning(nodes[i % 20].instance_id) for i in range(300)]
    testbed.send_raw(local_aws, queues.url, [json.dumps(e) for e in events])
    with scaler_process(local_aws, queues.url, SCALER_CONCURRENCY="5") as proc:
        time.sleep(1.0)  # mid-burst
        elapsed, stderr = _terminate(proc)
    assert proc.returncode == 0, stderr[-2000:]
    assert elapsed < 30
    first = {r["event_id"] for r in _logs(stderr) if r.get("outcome") == "handled"}
    assert 0 < len(first) < 300, "the burst should be cut in the middle"
    # Whatever the first process did not finish is on the queue, visible now: a second
    # process handles exactly the rest.
    with scaler_process(local_aws, queues.url) as proc:
        deadline = time.monotonic() + 30
        while testbed.queue_depth(local_aws, queues.url) and time.monotonic() < deadline:
            time.sleep(0.2)
        _, stderr = _terminate(proc)
    second = {r["event_id"] for r in _logs(stderr) if r.get("outcome") == "handled"}
    assert first | second == {e["id"] for e in events}
    assert testbed.queue_depth(local_aws, queues.url) == 0
    assert testbed.queue_depth(local_aws, queues.dlq_url) == 0
