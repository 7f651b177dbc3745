"""Paired comparisons over seeds: the mean of per-seed differences and its 95% interval.

Every policy runs on the same market for each seed, so two policies are compared seed by seed:
the differences ``a - b`` are one sample, and their mean's two-sided 95% interval is Student's
``mean ± t(0.975, n - 1) * sd / sqrt(n)``. The t quantiles come from a table up to 30 degrees
of freedom; beyond, the normal quantile 1.96 is close enough.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# t(0.975, df) for df = 1..30
T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
Z975 = 1.96


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    return T975[df - 1] if df <= len(T975) else Z975


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None  # None: one seed says nothing about spread
    high: float | None


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of ``values`` and its 95% t-interval."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def paired(a: Sequence[float], b: Sequence[float]) -> Interval:
    """The mean of ``a[i] - b[i]`` and its 95% interval (the same seeds, in the same order)."""
    if len(a) != len(b):
        raise ValueError(f"unpaired samples: {len(a)} and {len(b)} values")
    return mean_interval([x - y for x, y in zip(a, b, strict=True)])
