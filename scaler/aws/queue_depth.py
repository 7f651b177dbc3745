"""The events queue's depth and age, and its dead-letter queue's depth, for the gauges.

Each readiness check reads the queue with one ``GetQueueAttributes`` (it already asked for one
attribute; it asks for two now), and, once a minute at most (``DEAD_LETTER_EVERY``: a message
lands there rarely, and an alert on it waits minutes anyway), the dead-letter queue, named by
the queue's ``RedrivePolicy`` at start-up, with one more. SQS keeps a dead-letter queue in the
same account and region as its source, so its URL is the source's with the last path segments
replaced: no ``GetQueueUrl`` call (and no permission for it). A dead-letter queue the scaler
may not read (its role allows the events queue alone) is reported once and left alone.

The age of the oldest waiting message comes from the ``SentTimestamp`` of the messages the
intake receives, not from CloudWatch's ``ApproximateAgeOfOldestMessage``: that one is a
one-minute metric that lags by minutes, costs a ``GetMetricData`` request each time and needs a
permission of its own. The age is 0 while no message is visible; otherwise the age of the oldest
message of the intake's last receive, which keeps growing while the intake receives nothing (a
stuck scaler), and is a lower bound (a standard queue hands out messages in no strict order).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scaler.aws.clients import error_code
from scaler.clock import Clock
from scaler.metrics import Metrics

log = logging.getLogger(__name__)

DEAD_LETTER_LIMIT = 1.5  # seconds: within the readiness check's own limit
DEAD_LETTER_EVERY = 60.0  # seconds between reads of the dead-letter queue, at least
DEPTH = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")


def dead_letter_url(queue_url: str, redrive_policy: str | None) -> str | None:
    """The URL of the dead-letter queue a ``RedrivePolicy`` names; None without one."""
    if not redrive_policy:
        return None
    try:
        arn = str(json.loads(redrive_policy)["deadLetterTargetArn"])
    except (ValueError, KeyError, TypeError):
        return None
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return None
    account, name = parts[4], parts[5]
    url = urlsplit(queue_url)
    return urlunsplit((url.scheme, url.netloc, f"/{account}/{name}", "", ""))


def _lasting(exc: BaseException) -> bool:
    """Is this an error that asking again will not cure (access denied, no such queue)?"""
    code = error_code(exc) or ""
    return "AccessDenied" in code or "NonExistentQueue" in code or "QueueDoesNotExist" in code


class QueueDepth:
    """Reads the queues' attributes and sets ``scaler_queue_messages`` and the oldest age."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        metrics: Metrics,
        clock: Clock,
        oldest_sent: Callable[[], float | None],
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._metrics = metrics
        self._clock = clock
        self._oldest_sent = oldest_sent
        self._since = clock.now().timestamp()  # the age of a backlog never received from
        self.dead_letter_url: str | None = None  # set from the RedrivePolicy at start-up
        self._dead_letters_read: float | None = None  # when the dead-letter queue was last read

    async def read(self) -> None:
        """One read of both queues, side by side; an error reading the main queue propagates,
        the dead-letter queue's never does (nor does it hold the readiness check up)."""
        main = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=DEPTH)
        reply, dead_letters = await asyncio.gather(main, self._dead_letters_soon())
        attributes = reply.get("Attributes", {})
        visible = int(attributes.get(DEPTH[0], 0))
        oldest = self._oldest_sent()
        age = 0.0
        if visible:
            age = max(0.0, self._clock.now().timestamp() - (oldest or self._since))
        self._metrics.queue(
            visible=visible,
            in_flight=int(attributes.get(DEPTH[1], 0)),
            oldest_age=age,
            dead_letters=dead_letters,
        )

    async def _dead_letters_soon(self) -> int | None:
        """The dead-letter queue's depth, if it is due for a read (None: its gauge keeps its
        last value)."""
        now = self._clock.monotonic()
        last = self._dead_letters_read
        if last is not None and now - last < DEAD_LETTER_EVERY:
            return None
        self._dead_letters_read = now
        try:
            return await asyncio.wait_for(self._dead_letters(), DEAD_LETTER_LIMIT)
        except TimeoutError:
            return None

    async def _dead_letters(self) -> int | None:
        if self.dead_letter_url is None:
            return None
        try:
            reply = await self._sqs.get_queue_attributes(
                QueueUrl=self.dead_letter_url, AttributeNames=[DEPTH[0]]
            )
        except Exception as exc:
            if not _lasting(exc):
                return None  # a network error, throttling: the gauge keeps its last value
            log.warning(
                "cannot read the dead-letter queue's depth; scaler_queue_messages will not "
                "show it: allow sqs:GetQueueAttributes on it",
                extra={"queue_url": self.dead_letter_url, "error": str(exc)},
            )
            self.dead_letter_url = None
            return None
        return int(reply.get("Attributes", {}).get(DEPTH[0], 0))
