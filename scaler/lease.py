"""Who leads: one scaler at a time runs the periodic work, through a lease with an expiry.

Every replica handles events (that is idempotent: an instance already DRAINING is not drained
again, a lifecycle token is completed once, a standalone task is restarted once). Periodic work
that acts on the cluster as a whole (capacity top-up and return to spot, task rebalancing) must
run on one replica only, or two would launch twice the capacity.

The lease is one record: ``holder``, ``expires_at`` (the holder's wall-clock seconds) and
``term`` (raised at every change of holder). A replica may take it when there is none, when it
has expired, or when it already holds it; it renews it every ``duration / 3``. Because clocks
differ between machines and a renewal can be slow, a holder acts only until ``duration - margin``
after the *start* of its last successful write (its own monotonic clock); another replica takes
over only once ``expires_at`` (the end of ``duration`` after that write) is past on its clock. So
two replicas never act at once as long as their clocks differ by less than ``margin``.

This module is the arithmetic; :mod:`scaler.aws.lease` keeps the record in DynamoDB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseTerms:
    duration: float = 30.0
    margin: float = 5.0  # clock skew and write latency the lease tolerates

    def __post_init__(self) -> None:
        if not 0 <= self.margin < self.duration:
            raise ValueError("the lease margin must be shorter than its duration")

    @property
    def renew_every(self) -> float:
        return self.duration / 3


@dataclass(frozen=True)
class Record:
    holder: str
    expires_at: float  # wall-clock seconds, by the clock of the replica that wrote it
    term: int


def may_take(record: Record | None, me: str, now: float) -> bool:
    """May ``me`` write itself into the lease at wall time ``now``?"""
    return record is None or record.holder == me or record.expires_at < now


def acts_until(write_started: float, terms: LeaseTerms) -> float:
    """The monotonic time until which a holder may act after a successful write that began at
    ``write_started`` (its monotonic clock)."""
    return write_started + terms.duration - terms.margin
