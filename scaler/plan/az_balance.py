"""Removals that keep an Auto Scaling group's AZs balanced.

Auto Scaling keeps a group's instances spread evenly over its AZs. A terminate with the desired
capacity decremented that leaves one AZ two instances short of another triggers its
``AZRebalance`` process, which launches in the short AZ and then terminates an instance of the
long one of its own choosing, without a drain: its tasks are killed. So, unless ``AZRebalance``
is suspended, the scaler removes only instances of an AZ holding the most of the group's
instances (after what is already leaving), one removal at a time: AZ counts that differ by at
most one still do after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def balanced_removals(
    counts: Mapping[str, int], candidates: Iterable[tuple[str, str]]
) -> list[str]:
    """Those of ``candidates`` ((instance, AZ), in order of preference) that may go, one after
    another, each from an AZ with the most instances at that point. ``counts``: the group's
    instances per AZ, every AZ of the group included (an empty one with 0)."""
    left = Counter(counts)
    chosen: list[str] = []
    for instance, az in candidates:
        if left[az] <= 0 or left[az] < max(left.values()):
            continue
        left[az] -= 1
        chosen.append(instance)
    return chosen


def spread(counts: Mapping[str, int]) -> int:
    """How far the largest AZ is ahead of the smallest (0 with no AZ)."""
    return max(counts.values()) - min(counts.values()) if counts else 0
