"""/healthz and /readyz answer at once whatever AWS does: hanging, throttling, unreachable.

``scaler run`` runs as a process behind the fault proxy; once it has started, the proxy makes
AWS hang (or throttle) every call. Each probe must still answer within a second (the HTTP
client gives up after one), and /readyz must soon report why it is not ready and how old that
finding is.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from scaler import testbed
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.e2e.test_run_process import scaler_process

PROBE_LIMIT = 1.0  # seconds a probe may take to answer


def _probe(url: str) -> tuple[int, dict[str, object]]:
    """GET ``url``, failing (socket timeout) if no answer comes within PROBE_LIMIT."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_LIMIT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _probe_until_not_ready(base: str, limit: float = 20.0) -> dict[str, object]:
    """Probe both endpoints every 0.2 s until /readyz fails; return its answer."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert _probe(base + "/healthz") == (200, {"status": "ok"})
        status, ready = _probe(base + "/readyz")
        if status == 503:
            return ready
        assert ready["status"] == "ok"
        time.sleep(0.2)
    raise AssertionError("/readyz never noticed that AWS is in trouble")


@pytest.fixture
def proxy(local_aws: testbed.LocalAws, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    running = FaultProxy(local_aws.endpoint, [request.param]).start()
    yield running
    running.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        (
            Fault("latency", "*", delay=120.0),
            "the readiness check got no answer from AWS within 2s",
        ),
        (
            Fault("throttle", "sqs:*"),
            # the check itself, or the intake's calls it waits behind (botocore's adaptive rate)
            "AWS is throttling sqs:",
        ),
    ],
    indirect=["proxy"],
    ids=["hanging", "throttling"],
)
def test_probes_answer_at_once_while_aws_misbehaves(
    local_aws: testbed.LocalAws, proxy: FaultProxy, reason: str
) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    with scaler_process(local_aws, queues.url, AWS_ENDPOINT_URL=proxy.endpoint) as proc:
        status, ready = _probe(proc.base_url + "/readyz")
        assert (status, ready["status"]) == (200, "ok")
        proxy.arm()  # from now on AWS hangs or throttles
        ready = _probe_until_not_ready(proc.base_url)
        assert str(ready["reason"]).startswith(reason)
        assert isinstance(ready["checked_seconds_ago"], float)
        assert 0 <= ready["checked_seconds_ago"] < 10
        for _ in range(10):  # and they keep answering
            assert _probe(proc.base_url + "/healthz")[0] == 200
            assert _probe(proc.base_url + "/readyz")[0] == 503
            time.sleep(0.2)
    assert sum(proxy.injected.values()) > 0
