"""Paired statistics for ``imagerag eval compare``: two folders' scores of the same items.

Same definitions as ``summary.json`` (docs/evaluation.md): the mean of the paired differences with
a percentile bootstrap interval over the pairs (fixed seed), the win rate (share of pairs where the
second score is higher, ties counting half), the standard error with ``ddof=1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CHUNK = 1000
"""Bootstrap resamples drawn at a time (bounds memory to ``CHUNK × pairs`` indices)."""


@dataclass(frozen=True)
class PairedDiff:
    mean: float
    ci_low: float
    ci_high: float
    n: int
    win_rate: float


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and its standard error (sample standard deviation / √n); the error is ``None``
    below two values."""
    if not values:
        raise ValueError("mean_se of no values")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def paired_bootstrap(first: Sequence[float], second: Sequence[float], *, resamples: int = 10000,
                     seed: int = 0, level: float = 0.95) -> PairedDiff:
    """``second − first`` pair by pair: the mean difference, its percentile bootstrap interval at
    ``level`` (``resamples`` resamples of the pairs, drawn with ``seed``) and the win rate."""
    import numpy as np

    if len(first) != len(second):
        raise ValueError(f"paired_bootstrap: {len(first)} first values against {len(second)} second")
    if not first:
        raise ValueError("paired_bootstrap of no pairs")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"paired_bootstrap: resamples {resamples} must be ≥ 1, level {level} in (0, 1)")
    diffs = np.asarray(second, dtype=np.float64) - np.asarray(first, dtype=np.float64)
    n = len(diffs)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        stop = min(start + CHUNK, resamples)
        means[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    wins = float(np.sum(diffs > 0) + 0.5 * np.sum(diffs == 0))
    return PairedDiff(float(diffs.mean()), float(low), float(high), n, wins / n)
