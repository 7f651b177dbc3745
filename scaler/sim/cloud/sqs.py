"""Simulated SQS: a standard queue's delivery, as the scaler's intake meets it.

- A received message is invisible for the queue's visibility timeout (or the receive's), then
  delivered again with a new receipt handle, ``ApproximateReceiveCount`` one higher.
- A receive with ``WaitTimeSeconds`` waits (in the loop's time) until a message is visible or
  the wait is over; at most 10 messages a receive, 10 entries a batch.
- A queue with a ``RedrivePolicy`` moves a message to its dead-letter queue when it would be
  received more than ``maxReceiveCount`` times.
- Deleting with a receipt handle older than the message's last receive succeeds and deletes
  nothing (AWS's documented behaviour; the message notes the handle that superseded it); an
  unknown handle is a failed entry.
- Standard queues deliver at least once: ``duplicate_share`` of the messages are handed out once
  more while in flight, to the next receive (drawn from the world's seeded stream at send, so a
  run replays).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.transport import AwsError, Operations

ACCOUNT = "123456789012"
MAX_BATCH = 10
NO_QUEUE = "AWS.SimpleQueueService.NonExistentQueue"


@dataclass
class Message:
    id: str
    body: str
    sent: float
    visible_at: float = 0.0
    receives: int = 0
    handle: str = ""
    again: bool = False  # delivered once more while in flight (at-least-once delivery)
    # the handles that were current when a delete named an older one (and deleted nothing)
    superseded_by: list[str] = field(default_factory=list)


@dataclass
class Queue:
    name: str
    url: str
    arn: str
    visibility: float = 30.0
    redrive: dict[str, Any] | None = None
    messages: dict[str, Message] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class Sqs(Operations):
    """The queues of one region; ``now`` is the world's clock (the loop's time)."""

    def __init__(
        self,
        now: Callable[[], float],
        region: str = "us-east-1",
        rng: random.Random | None = None,
        duplicate_share: float = 0.0,
    ) -> None:
        self._now = now
        self._region = region
        self._rng = rng or random.Random(0)
        self.duplicate_share = duplicate_share
        self.queues: dict[str, Queue] = {}  # url -> queue
        self._ids = 0

    # -- queues ---------------------------------------------------------------------------

    async def create_queue(
        self, QueueName: str, Attributes: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        url = f"https://sqs.{self._region}.amazonaws.com/{ACCOUNT}/{QueueName}"
        if url not in self.queues:
            arn = f"arn:aws:sqs:{self._region}:{ACCOUNT}:{QueueName}"
            self.queues[url] = Queue(QueueName, url, arn)
        self._configure(self.queues[url], Attributes or {})
        return {"QueueUrl": url}

    def _configure(self, queue: Queue, attributes: dict[str, str]) -> None:
        if "VisibilityTimeout" in attributes:
            queue.visibility = float(attributes["VisibilityTimeout"])
        if "RedrivePolicy" in attributes:
            queue.redrive = json.loads(attributes["RedrivePolicy"])

    async def get_queue_attributes(
        self, QueueUrl: str, AttributeNames: list[str] | None = None
    ) -> dict[str, Any]:
        queue, now = self._queue(QueueUrl), self._now()
        visible = sum(1 for m in queue.messages.values() if m.visible_at <= now)
        values = {
            "QueueArn": queue.arn,
            "VisibilityTimeout": str(int(queue.visibility)),
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(len(queue.messages) - visible),
        }
        if queue.redrive is not None:
            values["RedrivePolicy"] = json.dumps(queue.redrive)
        names = AttributeNames or []
        wanted = values if "All" in names else {k: v for k, v in values.items() if k in names}
        return {"Attributes": wanted}

    def _queue(self, url: str) -> Queue:
        if url not in self.queues:
            raise AwsError(
                NO_QUEUE, "The specified queue does not exist.", shape="QueueDoesNotExist"
            )
        return self.queues[url]

    # -- sending ---------------------------------------------------------------------------

    async def send_message(self, QueueUrl: str, MessageBody: str, **_: Any) -> dict[str, Any]:
        message = self._put(self._queue(QueueUrl), MessageBody)
        return {"MessageId": message.id, "MD5OfMessageBody": _md5(MessageBody)}

    async def send_message_batch(
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        _check_batch(Entries)
        done = [
            {
                "Id": e["Id"],
                "MessageId": self._put(queue, e["MessageBody"]).id,
                "MD5OfMessageBody": _md5(e["MessageBody"]),
            }
            for e in Entries
        ]
        return {"Successful": done, "Failed": []}

    def deliver(self, url: str, body: str) -> None:
        """A message from inside the world (EventBridge's rule target), not an API call."""
        self._put(self._queue(url), body)

    def _put(self, queue: Queue, body: str) -> Message:
        self._ids += 1
        message = Message(f"00000000-0000-4000-8000-{self._ids:012d}", body, self._now())
        message.again = self._rng.random() < self.duplicate_share
        queue.messages[message.id] = message
        queue.arrived.set()
        return message

    # -- receiving -------------------------------------------------------------------------

    async def receive_message(
        self,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        VisibilityTimeout: int | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        if not 1 <= MaxNumberOfMessages <= MAX_BATCH:
            raise AwsError("InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10.")
        if not 0 <= WaitTimeSeconds <= 20:
            raise AwsError("InvalidParameterValue", "WaitTimeSeconds must be 0 to 20.")
        deadline = self._now() + WaitTimeSeconds
        while True:
            taken = self._take(queue, MaxNumberOfMessages, VisibilityTimeout)
            if taken or self._now() >= deadline:
                return {"Messages": taken} if taken else {}
            await self._wait(queue, deadline)

    async def _wait(self, queue: Queue, deadline: float) -> None:
        """Until a message arrives, one in flight becomes visible, or ``deadline``."""
        now = self._now()
        due = [m.visible_at for m in queue.messages.values() if m.visible_at > now]
        until = min([deadline, *due])
        queue.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.arrived.wait(), timeout=max(0.0, until - now))

    def _take(self, queue: Queue, most: int, visibility: int | None) -> list[dict[str, Any]]:
        now, taken = self._now(), list[dict[str, Any]]()
        for message in list(queue.messages.values()):
            if len(taken) >= most:
                break
            duplicate = message.visible_at > now and message.receives > 0 and message.again
            if message.visible_at > now and not duplicate:
                continue
            message.again = message.again and not duplicate
            if self._dead(queue, message):
                continue
            message.receives += 1
            message.visible_at = now + (queue.visibility if visibility is None else visibility)
            message.handle = f"{message.id}#{message.receives}"
            taken.append(_delivered(message))
        return taken

    def _dead(self, queue: Queue, message: Message) -> bool:
        """Move ``message`` to the dead-letter queue if this receive would be one too many."""
        if queue.redrive is None or message.receives < int(queue.redrive["maxReceiveCount"]):
            return False
        target = next(
            q for q in self.queues.values() if q.arn == queue.redrive["deadLetterTargetArn"]
        )
        del queue.messages[message.id]
        message.receives, message.visible_at = 0, 0.0
        target.messages[message.id] = message
        target.arrived.set()
        return True

    # -- after receiving -------------------------------------------------------------------

    async def delete_message_batch(
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        _check_batch(Entries)
        done, failed = [], []
        for entry in Entries:
            if not _valid(entry["ReceiptHandle"]):
                failed.append(_failure(entry, "ReceiptHandleIsInvalid"))
                continue
            message = _by_handle(queue, entry["ReceiptHandle"])
            if message is not None and message.handle == entry["ReceiptHandle"]:
                del queue.messages[message.id]
            elif message is not None:
                message.superseded_by.append(message.handle)
            done.append({"Id": entry["Id"]})
        return {"Successful": done, "Failed": failed}

    async def change_message_visibility_batch(
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        queue, now = self._queue(QueueUrl), self._now()
        _check_batch(Entries)
        done, failed = [], []
        for entry in Entries:
            message = _by_handle(queue, entry["ReceiptHandle"])
            if (
                message is None
                or message.handle != entry["ReceiptHandle"]
                or message.visible_at <= now
            ):
                failed.append(_failure(entry, "MessageNotInflight"))
                continue
            message.visible_at = now + float(entry["VisibilityTimeout"])
            done.append({"Id": entry["Id"]})
        return {"Successful": done, "Failed": failed}


def _valid(handle: str) -> bool:
    """Is ``handle`` a receipt handle this queue could have given?"""
    return handle.partition("#")[2].isdigit()


def _by_handle(queue: Queue, handle: str) -> Message | None:
    """The message a receipt handle names; None if it is gone."""
    return queue.messages.get(handle.partition("#")[0])


def _check_batch(entries: list[dict[str, Any]]) -> None:
    if len(entries) > MAX_BATCH:
        raise AwsError(
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
            shape="TooManyEntriesInBatchRequest",
        )
    ids = [e["Id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise AwsError(
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "Id repeated.",
            shape="BatchEntryIdsNotDistinct",
        )


def _failure(entry: dict[str, Any], code: str) -> dict[str, Any]:
    return {"Id": entry["Id"], "SenderFault": True, "Code": code, "Message": code}


def _delivered(message: Message) -> dict[str, Any]:
    return {
        "MessageId": message.id,
        "ReceiptHandle": message.handle,
        "MD5OfBody": _md5(message.body),
        "Body": message.body,
        "Attributes": {
            "ApproximateReceiveCount": str(message.receives),
            "SentTimestamp": str(int(message.sent * 1000)),
        },
    }


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
