"""Throttling is retried with jittered, capped exponential backoff; other errors are not."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError

from scaler.aws.retry import Backoff


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "UpdateContainerInstancesState")


class Flaky:
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise _error(self.failures.pop(0))
        return "ok"


def backoff(sleeps: list[float], attempts: int = 5) -> Backoff:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return Backoff(attempts=attempts, base=0.2, cap=1.0, rng=random.Random(1), sleep=sleep)


async def test_throttling_is_retried_with_growing_capped_jitter() -> None:
    sleeps: list[float] = []
    call = Flaky(["ThrottlingException", "RequestLimitExceeded", "ThrottlingException"] * 1)
    retried: list[str] = []
    assert await backoff(sleeps).call("Op", call, retried.append) == "ok"
    assert call.calls == 4
    assert retried == ["Op"] * 3
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= min(1.0, 0.2 * 2**attempt)


async def test_other_errors_are_not_retried() -> None:
    call = Flaky(["AccessDeniedException"])
    with pytest.raises(ClientError):
        await backoff([]).call("Op", call)
    assert call.calls == 1


async def test_gives_up_after_the_attempts() -> None:
    call = Flaky(["ThrottlingException"] * 10)
    with pytest.raises(ClientError):
        await backoff([], attempts=3).call("Op", call)
    assert call.calls == 3
