"""`scaler demo`, as the README runs it, read from its real output.

One run is checked for everything the demo must show: the interrupted instances drained and their
tasks moved; each injected test message named with what the scaler did with it; an on-demand
top-up for the lost spot capacity and the return to spot; an availability below 1 explained per
service; ``/metrics`` served while it runs; and an end by itself once everything has settled.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaler.demo import LENGTH
from scaler.metrics import Metrics


@dataclass
class DemoRun:
    out: str = ""
    lines: list[str] = field(default_factory=list)
    scrapes: list[str] = field(default_factory=list)  # /metrics, fetched while the demo ran
    returncode: int | None = None
    stderr: str = ""

    def index(self, pattern: str) -> int:
        """The first line matching ``pattern``; fails the test if none does."""
        for i, line in enumerate(self.lines):
            if re.search(pattern, line):
                return i
        raise AssertionError(f"no line matches {pattern!r} in:\n{self.out}")


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    run = DemoRun()
    command = [sys.executable, "-m", "scaler", "demo"]
    with (
        tempfile.TemporaryFile("w+") as err,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True) as proc,
    ):
        watchdog = threading.Timer(150, proc.kill)  # a hung demo fails instead of hanging
        watchdog.start()
        url = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            run.lines.append(line.rstrip("\n"))
            found = re.search(r"metrics at (http://\S+/metrics)", line)
            if found:
                url = found.group(1)
                run.scrapes.append(_scrape(url))
            elif url and len(run.scrapes) == 1 and "launched by demo-on-demand" in line:
                run.scrapes.append(_scrape(url))  # after the first on-demand top-up
        run.returncode = proc.wait()
        watchdog.cancel()
        err.seek(0)
        run.stderr = err.read()
    run.out = "\n".join(run.lines)
    return run


@pytest.mark.slow
def test_demo_drains_and_moves_tasks_and_loses_none(demo: DemoRun) -> None:
    out = demo.out
    assert demo.returncode == 0, out + demo.stderr[-3000:]
    warned = set(re.findall(r"spot interruption warning for (i-\w+)", out))
    drained = set(
        re.findall(r"(i-\w+) DRAINING \(set by the scaler [\d.]+s after the warning", out)
    )
    assert len(warned) == 2 and drained == warned
    assert "replacement task RUNNING" in out
    assert "tasks lost with their instance: 0" in out
    assert re.search(r"services healthy/desired: web 8/8, api 6/6, worker 6/6", out)
    assert re.search(r"events: .*duplicate=1.*other_cluster=1", out)
    assert "dead-letter queue: 1 message(s)" in out


@pytest.mark.slow
def test_the_timeline_names_each_injected_message_and_its_fate(demo: DemoRun) -> None:
    injected = dict(
        re.findall(r"injected on the queue: (.+) \(message (\w+)\)$", demo.out, re.MULTILINE)
    )
    assert len(injected) == 3, demo.out
    other = r"copy \d of a spot warning for i-\w+, an instance of another cluster \(message \w+\)"
    told = [
        demo.index(rf"{other}: acknowledged \(deleted\) and counted as other_cluster"),
        demo.index(rf"{other}: dropped as duplicate"),
        demo.index(
            r"a malformed message .* \(message \w+\): left on the queue for the "
            r"dead-letter queue \(receive 1 of 2"
        ),
        demo.index(
            r"a malformed message .* \(message \w+\): left on the queue for the "
            r"dead-letter queue \(receive 2 of 2"
        ),
        demo.index(r"a malformed message .* \(message \w+\): moved to the dead-letter queue"),
    ]
    assert told[2] < told[3] < told[4]
    # the two copies are told apart by their message ids, each with its own outcome
    copies = re.findall(rf"({other}): (acknowledged|dropped)", demo.out)
    assert len({c for c, _ in copies}) == 2 and {o for _, o in copies} == {
        "acknowledged",
        "dropped",
    }


@pytest.mark.slow
def test_the_timeline_shows_an_on_demand_top_up_and_the_return_to_spot(demo: DemoRun) -> None:
    second_warning = max(i for i, line in enumerate(demo.lines) if "spot interruption" in line)
    top_up = demo.index(r"scaler decides: top-up demo-on-demand: 0 -> 1 \(on-demand fallback")
    launched = demo.index(r"(i-\w+) launched by demo-on-demand \(on-demand, us-east-1\w\)")
    od = re.search(r"(i-\w+) launched by demo-on-demand", demo.lines[launched])
    assert od is not None
    fallback = od.group(1)
    registered = demo.index(rf"{fallback} registered in")
    spot_back = demo.index(rf"scaler decides: return to spot: demo-spot \+1 to replace {fallback}")
    spot_launched = demo.index(r"i-\w+ launched by demo-spot \(spot, ")
    release = demo.index(r"scaler decides: return to spot: release 1 on-demand instance")
    draining = demo.index(rf"{fallback} DRAINING \(set by the scaler by its own choice")
    gone = demo.index(rf"{fallback} terminated by the scaler \(demo-on-demand\)")
    order = [second_warning, top_up, launched, registered, spot_back, spot_launched]
    assert order == sorted(order), demo.out
    # the fallback goes once its spot replacement is up; a second on-demand instance, launched
    # for headroom while the drained tasks were still being replaced (a timing the demo's real
    # clock allows), may be released before it
    assert release < draining and spot_launched < draining < gone, demo.out
    changes = re.search(r"instances now: 5 spot; capacity changes: (.+)$", demo.out, re.M)
    assert changes, demo.out
    counted = dict(c.split("=") for c in changes.group(1).split(", "))
    assert counted.pop("add:interruption") == "1" and counted.pop("add:return_to_spot") == "1"
    # every on-demand instance went back: one by the spot replacement, any other for headroom
    extra = int(counted.pop("add:headroom", "0"))
    assert extra <= 1 and counted == {"remove:return_to_spot": str(1 + extra)}, demo.out


@pytest.mark.slow
def test_an_availability_below_one_is_explained_per_service(demo: DemoRun) -> None:
    found = re.search(
        r"availability ([\d.]+) \(([\d.]+) of ([\d.]+) healthy task-seconds missing\)", demo.out
    )
    assert found, demo.out
    availability, missing, wanted = (float(g) for g in found.groups())
    assert availability < 1  # the drains stop tasks before their replacements are healthy
    assert abs((1 - missing / wanted) - availability) < 0.0002
    losses = re.findall(r"^\s+(web|api|worker) lost ([\d.]+) task-seconds: (.+)$", demo.out, re.M)
    assert losses, demo.out
    assert abs(sum(float(s) for _, s, _ in losses) - missing) < 0.2 * len(losses)
    for _, _, why in losses:
        assert re.search(r"\d+ task\(s\) stopped on an instance drained for its spot notice", why)
        assert "before their replacements were healthy" in why
    assert re.search(r"why: with minimumHealthyPercent 50 \(.+\), ECS stops the tasks", demo.out)


@pytest.mark.slow
def test_metrics_are_served_while_it_runs_and_it_ends_by_itself(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.out + demo.stderr[-3000:]
    assert len(demo.scrapes) == 2, demo.out
    assert "scaler_events_total" in demo.scrapes[0]
    assert (
        'scaler_capacity_changes_total{change="add",reason="interruption"} 1.0' in demo.scrapes[1]
    )
    settled = re.search(r"summary \(settled after (\d+)s\)", demo.out)
    assert settled, demo.out  # not stopped at its length (or the timeout) before settling
    assert int(settled.group(1)) <= LENGTH


# labelled families whose series only appear on events the demo does not cause
UNUSED_BY_THE_DEMO = {
    "scaler_lifecycle_actions",
    "scaler_standalone_task_restarts",
    "scaler_throttle_retries",
    "scaler_overflow_tasks",
    "scaler_task_moves",
    "scaler_lease_changes",
    "scaler_reservation_advice",  # SCALER_ADVICE is off
    "scaler_reservation_current",
    "scaler_surge_hold_seconds",  # the demo runs with SCALER_WARNING_SURGE=false
}


@pytest.mark.slow
def test_every_metric_family_has_samples_in_the_demo_scrape(demo: DemoRun) -> None:
    scraped = {
        family.name: len(family.samples)
        for family in text_string_to_metric_families(demo.scrapes[-1])
    }
    registered = {family.name for family in Metrics().registry.collect()}
    assert registered <= scraped.keys()
    empty = {name for name in registered if not scraped[name]}
    assert empty <= UNUSED_BY_THE_DEMO, sorted(empty - UNUSED_BY_THE_DEMO)
    scrape = demo.scrapes[-1]
    assert re.search(r'scaler_info\{cluster="demo",dry_run="false",queue="[^"]+"', scrape)
    assert 'scaler_queue_messages{queue="dead_letter",state="visible"} 0.0' in scrape
    assert re.search(r"scaler_queue_wait_seconds_count [1-9]", scrape)
    assert 'scaler_aws_call_seconds_count{operation="UpdateContainerInstancesState"' in scrape
    assert re.search(
        r'scaler_interruptions_total\{availability_zone="[^"]+",instance_type=', scrape
    )
