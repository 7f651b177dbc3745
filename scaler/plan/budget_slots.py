"""The disruption budget shared by replicas: numbered slots, one per recommendation drain.

Each replica's drain gate counts the drains it admitted itself and the DRAINING instances it
sees; two gates deciding at once would each see a free place in the budget and both drain. So
an admitted drain also takes a *slot*: one of ``budget`` numbered places (0 .. budget-1) that a
store writes only conditionally (:mod:`scaler.aws.budget_slots`), so no two drains hold the same
slot and never more drains than slots are under way.

A slot names its instance, its holder and when it was taken, and lasts until ``expires`` (the
drain timeout: a holder that crashed before draining frees it at the latest then). It is *in
use* while its instance still disrupts, as the reader sees the cluster:

- its instance is not yet DRAINING (the drain is about to be made) or still has tasks to move;
- its instance is not registered as far as the reader knows, but the slot was taken too
  recently for the reader's view to have seen it (``settle``: the clock skew allowed between
  replicas); after that, an unknown instance is gone.

A slot not in use may be taken over by anyone (on the condition that it still holds what the
reader saw); one naming the instance to drain is taken again (a message redelivered after its
replica crashed). A holder whose admitted drain did not happen frees its slot at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """A place in the shared disruption budget, as the store holds it."""

    index: int
    instance_id: str
    holder: str
    taken: float  # epoch seconds
    expires: float  # epoch seconds


def in_use(
    slot: Slot, now: float, moved: Mapping[str, bool], seen_at: float, settle: float
) -> bool:
    """Does ``slot`` still stand for a drain under way? ``moved``: each registered instance the
    reader knows -> whether it is DRAINING with every task moved; ``seen_at``: when the reader's
    view of the cluster was read (epoch seconds)."""
    if slot.expires <= now:
        return False
    if slot.instance_id in moved:
        return not moved[slot.instance_id]
    return seen_at < slot.taken + settle  # perhaps registered after the reader's view


def candidates(
    instance_id: str, slots: Iterable[Slot], busy: Iterable[int], budget: int
) -> list[tuple[int, Slot | None]]:
    """The slots ``instance_id`` may take, in order, each with what it holds now: the one
    already naming it, then every free index below ``budget`` (``busy``: indices in use)."""
    by_index = {s.index: s for s in slots}
    own = [(s.index, s) for s in by_index.values() if s.instance_id == instance_id]
    taken = set(busy) | {index for index, _ in own}
    free = [(i, by_index.get(i)) for i in range(budget) if i not in taken]
    return sorted(own, key=lambda pair: pair[0]) + free


def busy_indices(
    slots: Sequence[Slot], now: float, moved: Mapping[str, bool], seen_at: float, settle: float
) -> set[int]:
    """The indices of the slots in use."""
    return {s.index for s in slots if in_use(s, now, moved, seen_at, settle)}
