"""The shipped SQS intake, unchanged, on the simulated SQS in virtual time: handled messages
are deleted, a handler failure is retried by redelivery, a malformed message ends in the
dead-letter queue, and the run replays exactly."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.intake import Intake, Outcome
from scaler.events import Signal
from scaler.metrics import Metrics
from scaler.settings import load_settings
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import LoopClock, run

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))


class FlakyHandler:
    """Records what it handles, failing the first signal once."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []

    async def __call__(self, signal: Signal, received_at: datetime) -> Outcome:
        now = asyncio.get_running_loop().time()
        self.seen.append((now, signal.event_id.removeprefix("ev-")))
        if len(self.seen) == 1:
            raise RuntimeError("injected failure")
        return Outcome("handled")


async def _setup(client: Any) -> tuple[str, str]:
    dlq = (await client.create_queue(QueueName="events-dlq"))["QueueUrl"]
    arn = (await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    url = (
        await client.create_queue(
            QueueName="events", Attributes={"VisibilityTimeout": "5", "RedrivePolicy": redrive}
        )
    )["QueueUrl"]
    for iid in ("i-0aaa", "i-0bbb", "i-0ccc"):
        body = json.dumps(testbed.spot_warning(iid, when=START, event_id=f"ev-{iid}"))
        await client.send_message(QueueUrl=url, MessageBody=body)
    await client.send_message(QueueUrl=url, MessageBody="{not json")
    return str(url), str(dlq)


def _run_intake() -> tuple[list[tuple[float, str]], int, int, float]:
    async def main() -> tuple[list[tuple[float, str]], int, int, float]:
        loop = asyncio.get_running_loop()
        sqs = Sqs(loop.time)
        async with AwsClients(TARGET, Metrics(), SimulatedAws({"sqs": sqs}).install) as aws:
            url, dlq = await _setup(aws.sqs)
            handler = FlakyHandler()
            settings = load_settings(cluster="prod", queue_url=url, wait_time=20, retry_delay=1)
            clock = LoopClock(START)
            intake = Intake(aws.sqs, url, handler, settings, Metrics(), clock, queue_visibility=5)
            stop = asyncio.Event()
            loop.call_later(120, stop.set)
            await intake.run(stop)
            left = len(sqs.queues[url].messages)
            return handler.seen, left, len(sqs.queues[dlq].messages), loop.time()

    return run(main())


def test_the_intake_runs_unchanged_in_virtual_time() -> None:
    seen, left, dead, ended = _run_intake()
    handled = sorted({iid for _, iid in seen})
    assert handled == ["i-0aaa", "i-0bbb", "i-0ccc"]
    assert len(seen) == 4, "the failed one came back once"
    assert left == 0
    assert dead == 1, "the malformed message waits in the dead-letter queue"
    assert 120 <= ended < 200, "two virtual minutes, not two real ones"


def test_a_run_replays_exactly() -> None:
    assert _run_intake() == _run_intake()


def test_a_cancelled_intake_leaves_no_poll_behind() -> None:
    """A crash (the intake's task cancelled mid long poll) ends its poll too: a poll left
    running would take the next message and drop it, hiding it for a visibility timeout and
    counting a receive toward the dead-letter queue, with no process to handle it."""

    async def main() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        sqs = Sqs(loop.time)
        async with AwsClients(TARGET, Metrics(), SimulatedAws({"sqs": sqs}).install) as aws:
            url = (await aws.sqs.create_queue(QueueName="events"))["QueueUrl"]
            settings = load_settings(cluster="prod", queue_url=url, wait_time=20)
            intake = Intake(aws.sqs, url, FlakyHandler(), settings, Metrics(), LoopClock(START))
            life = asyncio.create_task(intake.run(asyncio.Event()))
            await asyncio.sleep(5)  # long-polling an empty queue
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await life
            body = json.dumps(testbed.spot_warning("i-0aaa", when=START, event_id="ev-late"))
            await aws.sqs.send_message(QueueUrl=url, MessageBody=body)
            await asyncio.sleep(30)
            (message,) = sqs.queues[url].messages.values()
            return message.receives, message.visible_at <= loop.time()

    receives, visible = run(main())
    assert (receives, visible) == (0, True), "a dead intake received the message"
