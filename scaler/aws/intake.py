"""The SQS intake: receive events, hand each to the handler, delete it only once its work is done.

The loop long-polls the queue for at most as many messages as it has free handler slots
(``SCALER_CONCURRENCY``), so a received message never waits for a slot while its visibility timeout
runs. Each message then goes through:

1. **parse**: an unreadable body is counted and logged, and *left on the queue*: the queue's redrive
   policy moves it to the dead-letter queue after ``maxReceiveCount`` receives;
2. **dedup**: a copy of an event already handled is deleted without acting;
3. **handle**: the handler returns an outcome (handled, other_cluster, ignored) or raises;
4. **ack**: on an outcome the message is deleted (in batches of 10); on failure it is made visible
   again after a backoff that doubles with each receive, so a transient error is retried soon.

Messages are received with the queue's own visibility timeout, so a malformed message comes back
(and reaches the dead-letter queue) on the schedule the queue's owner chose. While a message is
still being handled its visibility is extended by ``SCALER_VISIBILITY_TIMEOUT``, so no other
consumer sees it. On shutdown the loop stops receiving, lets in-flight work finish for
``SCALER_SHUTDOWN_GRACE`` seconds, then cancels what is left and makes those messages visible at
once, so another replica (or the next start) picks them up: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from scaler.aws.batcher import Batcher
from scaler.aws.clients import error_code
from scaler.clock import Clock
from scaler.dedup import Deduplicator
from scaler.events import MalformedEvent, Signal, instance_ids, parse_event
from scaler.metrics import Metrics
from scaler.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RECEIVE = 10
MAX_RETRY_DELAY = 300
ABANDON_POLL_AFTER = 1.0  # seconds a long poll may still answer once stopping
MAX_VISIBILITY = 43_200  # SQS hides a message at most 12 hours from its receive
VISIBILITY_MARGIN = 60
FINAL_CALLS_TIMEOUT = 3.0  # shutdown must end well inside ECS's 30 s stopTimeout
MAX_SEND_DELAY = 900  # the longest DelaySeconds SQS accepts


@dataclass(frozen=True)
class Outcome:
    """What a handler did with a signal.

    ``label`` is the metric outcome (handled, other_cluster, ignored). ``follow_up``, if set, is
    work that must finish before the message may be deleted but that should not hold a handler
    slot (for example watching a drain until a lifecycle action can complete): the message stays
    in flight, its visibility extended, until the follow-up ends. ``retry_after`` asks for the
    message back after that many seconds instead of deleting it (work scheduled for later).
    """

    label: str
    follow_up: Awaitable[None] | None = None
    retry_after: float | None = None


Handler = Callable[[Signal, datetime], Awaitable[Outcome]]


@dataclass
class Message:
    """One received SQS message and what the intake knows about it."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    received_at: datetime
    received_mono: float
    last_extended: float = field(default=0.0)
    done: bool = False  # its outcome is decided: the extender leaves it alone
    kind: str = "unknown"

    @classmethod
    def from_sqs(cls, raw: dict[str, Any], clock: Clock) -> Message:
        count = raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        mono = clock.monotonic()
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(count),
            received_at=clock.now(),
            received_mono=mono,
            last_extended=mono,
        )


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Intake:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        settings: Settings,
        metrics: Metrics,
        clock: Clock,
        queue_visibility: int = 30,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._dedup = Deduplicator(clock, settings.dedup_ttl)
        self._deleter: Batcher[str, None] = Batcher(self._delete_batch, max_size=10, window=0.05)
        self._inflight: dict[asyncio.Task[None], Message] = {}  # holding a handler slot
        self._held: dict[asyncio.Task[None], Message] = {}  # waiting on a follow-up
        self.last_tick = clock.monotonic()
        # when the oldest message of the last receive that got any was sent (Unix seconds)
        self.oldest_sent: float | None = None
        # A message is extended once it has been in flight for half the time it is hidden for:
        # first the queue's own visibility timeout, then SCALER_VISIBILITY_TIMEOUT each time.
        self._extend_after = max(0.25, min(queue_visibility, settings.visibility_timeout) / 2)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and handle messages until ``stop`` is set, then shut down gracefully."""
        extender = asyncio.create_task(self._extend_forever(), name="visibility-extender")
        failures = 0
        try:
            while not stop.is_set():
                self._tick()
                free = self._settings.concurrency - len(self._inflight)
                if free <= 0:
                    await self._wait_for_slot(stop)
                    continue
                try:
                    batch = await self._receive_unless_stopped(min(MAX_RECEIVE, free), stop)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    await self._back_off(exc, failures, stop)
                    continue
                for raw in batch:
                    self._start(Message.from_sqs(raw, self._clock))
        finally:
            await self._shutdown()
            extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await extender

    def _tick(self) -> None:
        self.last_tick = self._clock.monotonic()
        self._metrics.loop_tick.set_to_current_time()

    async def _wait_for_slot(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({*self._inflight, stopper}, timeout=1.0, return_when="FIRST_COMPLETED")
        stopper.cancel()

    async def _receive_unless_stopped(self, count: int, stop: asyncio.Event) -> list[Any]:
        """One long poll; if ``stop`` is set meanwhile, its messages go straight back.

        A poll that was answered (as it is at once during a burst) has its messages released
        unstarted. A poll still waiting after a short grace is abandoned: if it took messages
        server-side after all, they return after their visibility timeout, delayed but not lost.
        If the intake itself is cancelled, so is its poll: a poll left running would take
        messages for no one and count their receives toward the dead-letter queue.
        """
        receive = asyncio.create_task(self._receive(count))
        try:
            return await self._poll_or_release(receive, stop)
        except asyncio.CancelledError:
            receive.cancel()
            raise

    async def _poll_or_release(
        self, receive: asyncio.Task[list[Any]], stop: asyncio.Event
    ) -> list[Any]:
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({receive, stopper}, return_when="FIRST_COMPLETED")
        finally:
            stopper.cancel()
        if receive in done:
            return receive.result()
        finished, _ = await asyncio.wait({receive}, timeout=ABANDON_POLL_AFTER)
        if not finished:
            receive.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            unstarted = [Message.from_sqs(raw, self._clock) for raw in await receive]
            await self._set_visibility(unstarted, 0)
        return []

    async def _receive(self, count: int) -> list[Any]:
        response = await self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self._settings.wait_time,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        messages: list[Any] = response.get("Messages", [])
        self._metrics.messages_received.inc(len(messages))
        self._waited(messages)
        return messages

    def oldest(self) -> float | None:
        """When the oldest message of the last receive that got any was sent (Unix s)."""
        return self.oldest_sent

    def _waited(self, messages: list[Any]) -> None:
        """Observe how long each message received for the first time waited in the queue (its
        ``SentTimestamp``, in milliseconds), and remember the oldest of them."""
        now = self._clock.now().timestamp()
        sent_times = []
        for raw in messages:
            attributes = raw.get("Attributes", {})
            sent = attributes.get("SentTimestamp")
            # a message received again (failed, deferred) was sent long before it came back
            if attributes.get("ApproximateReceiveCount", "1") != "1" or not str(sent).isdigit():
                continue
            sent_times.append(int(str(sent)) / 1000)
            self._metrics.queue_wait.observe(max(0.0, now - sent_times[-1]))
        if sent_times:
            self.oldest_sent = min(sent_times)

    async def _back_off(self, exc: Exception, failures: int, stop: asyncio.Event) -> None:
        delay = min(2.0 ** (failures - 1), 30.0)
        log.error(
            "receiving from the queue failed; retrying",
            extra={"error": error_code(exc) or repr(exc), "retry_in_s": delay},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)

    def _start(self, message: Message) -> None:
        task = asyncio.create_task(self._process(message), name=f"message-{message.message_id}")
        self._inflight[task] = message
        self._metrics.inflight.set(len(self._inflight))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._metrics.inflight.set(len(self._inflight))

    # -- one message ------------------------------------------------------------------------

    async def _process(self, message: Message) -> None:
        try:
            signal = parse_event(message.body)
        except MalformedEvent as exc:
            self._malformed(message, exc)
            return
        message.kind = signal.KIND
        if signal.event_id and self._dedup.working(signal.event_id):
            # a copy of an event still being handled: wait for it outside the handler slots
            self._hold_task(message, self._handle(message, signal))
            return
        await self._handle(message, signal)

    async def _handle(self, message: Message, signal: Signal) -> None:
        if signal.event_id and not await self._dedup.claim(signal.event_id):
            await self._ack(message, signal, "duplicate")
            return
        try:
            outcome = await self._handler(signal, message.received_at)
        except asyncio.CancelledError:
            self._dedup.finish(signal.event_id, succeeded=False)
            raise
        except Exception as exc:
            self._dedup.finish(signal.event_id, succeeded=False)
            await self._failed(message, signal, exc)
            return
        if outcome.retry_after is not None:
            self._dedup.finish(signal.event_id, succeeded=False)
            await self._defer(message, signal, outcome.retry_after)
        elif outcome.follow_up is not None:
            self._hold_task(
                message, self._follow(message, signal, outcome.label, outcome.follow_up)
            )
        else:
            self._dedup.finish(signal.event_id, succeeded=True)
            await self._ack(message, signal, outcome.label)

    def _hold_task(self, message: Message, work: Coroutine[Any, Any, None]) -> None:
        """Keep the message in flight, outside the handler slots, until ``work`` ends."""
        task = asyncio.create_task(work)
        self._held[task] = message
        task.add_done_callback(self._released_hold)

    def _released_hold(self, task: asyncio.Task[None]) -> None:
        self._held.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("held message failed", exc_info=task.exception())

    async def _follow(
        self, message: Message, signal: Signal, label: str, follow_up: Awaitable[None]
    ) -> None:
        try:
            await follow_up
        except asyncio.CancelledError:
            self._dedup.finish(signal.event_id, succeeded=False)
            raise
        except Exception as exc:
            self._dedup.finish(signal.event_id, succeeded=False)
            await self._failed(message, signal, exc)
            return
        finally:
            if inspect.iscoroutine(follow_up):
                follow_up.close()  # a no-op once it ran; avoids a warning if cancelled first
        self._dedup.finish(signal.event_id, succeeded=True)
        await self._ack(message, signal, label)

    async def _defer(self, message: Message, signal: Signal, delay: float) -> None:
        """Hand the message back to be received when it is due.

        SQS hides a message for at most 12 hours from its receive, and every receive counts
        toward the dead-letter queue. A wait that fits is one hidden message; a longer one is
        carried by a fresh copy of the event, sent with the longest delay SQS allows, and the
        original is deleted: each copy is received at most twice, however far away the event.
        """
        message.done = True
        elapsed = self._clock.monotonic() - message.received_mono
        room = MAX_VISIBILITY - elapsed - VISIBILITY_MARGIN
        self._record(message, "deferred")
        context = {**self._context(message, signal, "deferred"), "due_in_s": round(delay)}
        if delay <= room:
            log.info("event deferred", extra=context)
            await self._set_visibility([message], max(0, int(delay)))
            return
        log.info("event deferred: re-queued as a fresh copy", extra=context)
        await self._sqs.send_message(
            QueueUrl=self._queue_url, MessageBody=message.body, DelaySeconds=MAX_SEND_DELAY
        )
        await self._deleter.submit(message.receipt_handle)

    def _all_inflight(self) -> list[Message]:
        return [*self._inflight.values(), *self._held.values()]

    def _malformed(self, message: Message, exc: MalformedEvent) -> None:
        self._record(message, "malformed")
        log.warning(
            "malformed message left for the dead-letter queue",
            extra={
                "message_id": message.message_id,
                "reason": exc.reason,
                "error": str(exc),
                "receive_count": message.receive_count,
            },
        )

    async def _ack(self, message: Message, signal: Signal, outcome: str) -> None:
        message.done = True
        try:
            await self._deleter.submit(message.receipt_handle)
        except Exception as exc:
            # The work is done; the copy that comes back will be found a duplicate.
            log.warning(
                "deleting a handled message failed; it will be received again",
                extra={"message_id": message.message_id, "error": error_code(exc) or repr(exc)},
            )
        self._record(message, outcome)
        level = logging.DEBUG if outcome in ("duplicate", "ignored") else logging.INFO
        log.log(level, f"event {outcome}", extra=self._context(message, signal, outcome))

    async def _failed(self, message: Message, signal: Signal, exc: Exception) -> None:
        message.done = True
        delay = min(self._settings.retry_delay * 2 ** (message.receive_count - 1), MAX_RETRY_DELAY)
        self._record(message, "failed")
        log.error(
            "handling an event failed; it will be received again",
            extra={
                **self._context(message, signal, "failed"),
                "error": repr(exc),
                "retry_in_s": delay,
            },
        )
        await self._set_visibility([message], int(delay))

    def _record(self, message: Message, outcome: str) -> None:
        self._metrics.events.labels(message.kind, outcome).inc()
        elapsed = self._clock.monotonic() - message.received_mono
        self._metrics.event_seconds.labels(message.kind).observe(elapsed)

    @staticmethod
    def _context(message: Message, signal: Signal, outcome: str) -> dict[str, Any]:
        return {
            "message_id": message.message_id,
            "event_id": signal.event_id,
            "kind": signal.KIND,
            "outcome": outcome,
            "instance_ids": list(instance_ids(signal)),
        }

    # -- SQS writes -------------------------------------------------------------------------

    async def _delete_batch(self, handles: Sequence[str]) -> dict[str, BaseException | None]:
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        response = await self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        results: dict[str, BaseException | None] = dict.fromkeys(handles)
        for failure in response.get("Failed", []):
            handle = handles[int(failure["Id"])]
            results[handle] = RuntimeError(f"{failure.get('Code')}: {failure.get('Message')}")
        return results

    async def _set_visibility(self, messages: Sequence[Message], seconds: int) -> None:
        for chunk in _chunks(messages, 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                for i, m in enumerate(chunk)
            ]
            try:
                reply = await self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            except Exception as exc:
                log.warning(
                    "changing message visibility failed",
                    extra={"messages": len(chunk), "error": error_code(exc) or repr(exc)},
                )
                continue
            for failure in reply.get("Failed", []):
                log.warning(
                    "changing message visibility failed",
                    extra={
                        "message_id": chunk[int(failure["Id"])].message_id,
                        "error": f"{failure.get('Code')}: {failure.get('Message')}",
                    },
                )

    async def _extend_forever(self) -> None:
        period = self._extend_after
        while True:
            await asyncio.sleep(period / 2)
            due = [
                m
                for m in self._all_inflight()
                if not m.done and self._clock.monotonic() - m.last_extended >= period
            ]
            if due:
                await self._set_visibility(due, self._settings.visibility_timeout)
                now = self._clock.monotonic()
                for m in due:
                    m.last_extended = now
                self._metrics.visibility_extensions.inc(len(due))

    # -- shutdown ---------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        pending = {*self._inflight, *self._held}
        if pending:
            log.info("stopping: waiting for in-flight messages", extra={"inflight": len(pending)})
            await asyncio.wait(pending, timeout=self._settings.shutdown_grace)
        leftovers = {**self._inflight, **self._held}
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(set(leftovers))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINAL_CALLS_TIMEOUT):
                    await self._set_visibility(list(leftovers.values()), 0)
            for message in leftovers.values():
                if not message.done:  # a decided outcome was counted already
                    self._record(message, "released")
            log.warning(
                "released unfinished messages to the queue", extra={"count": len(leftovers)}
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_CALLS_TIMEOUT):
                await self._deleter.close()

    @property
    def inflight(self) -> int:
        return len(self._inflight) + len(self._held)
