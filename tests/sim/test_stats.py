"""The paired comparison over seeds (scaler.sim.stats)."""

from __future__ import annotations

import math

import pytest

from scaler.sim.stats import Z975, mean_interval, paired, t975


def test_t_quantiles_from_the_table_and_the_normal_beyond() -> None:
    assert t975(1) == 12.706
    assert t975(4) == 2.776
    assert t975(30) == 2.042
    assert t975(31) == Z975 == 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_the_interval_is_mean_plus_minus_t_times_standard_error() -> None:
    got = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)  # sd = sqrt(2.5), n = 5, df = 4
    assert got.mean == 3.0
    assert got.low == pytest.approx(3.0 - half)
    assert got.high == pytest.approx(3.0 + half)


def test_many_values_use_the_normal_quantile() -> None:
    values = [float(v % 2) for v in range(40)]  # mean 0.5, sd sqrt(40 * 0.25 / 39)
    got = mean_interval(values)
    half = 1.96 * math.sqrt(40 * 0.25 / 39) / math.sqrt(40)
    assert got.high == pytest.approx(0.5 + half)


def test_one_value_has_no_interval_and_equal_values_a_point() -> None:
    assert mean_interval([0.7]) == mean_interval([0.7]).__class__(0.7, None, None)
    same = mean_interval([2.0, 2.0, 2.0])
    assert (same.low, same.high) == (2.0, 2.0)


def test_paired_differences_are_seed_by_seed() -> None:
    # each seed shifts both policies alike: the difference is exactly 1 every time
    got = paired([10.0, 20.0, 35.0], [9.0, 19.0, 34.0])
    assert got.mean == pytest.approx(1.0)
    assert got.low == pytest.approx(1.0)
    assert got.high == pytest.approx(1.0)
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        mean_interval([])
