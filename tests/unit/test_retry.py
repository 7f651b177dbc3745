"""The scaler's own waits grow with jitter and a cap; throttling is told from other errors."""

from __future__ import annotations

import random

from botocore.exceptions import ClientError

from scaler.aws.retry import Backoff, is_throttling


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "UpdateContainerInstancesState")


def test_waits_grow_with_full_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base=0.2, cap=1.0, rng=random.Random(1))
    for attempt in range(8):
        for _ in range(50):
            assert 0 <= backoff.delay(attempt) <= min(1.0, 0.2 * 2**attempt)


def test_throttling_codes_of_every_service_are_throttling() -> None:
    for code in ("ThrottlingException", "RequestLimitExceeded", "Throttling"):
        assert is_throttling(_error(code))
    assert not is_throttling(_error("AccessDeniedException"))
    assert not is_throttling(RuntimeError("Throttling"))
