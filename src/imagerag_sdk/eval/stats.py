"""Statistics of an evaluation: mean ± standard error, the paired difference final − initial with a
percentile bootstrap interval, the win rate, and ``summary.json`` (docs/evaluation.md).

* ``se`` is the sample standard deviation (ddof=1) over √n; ``None`` below two values.
* The paired difference is over the rows that have both scores (same item and seed); its interval
  is the percentile bootstrap of the mean difference: ``resamples`` resamples of the pairs with
  replacement, drawn with a fixed seed (the same rows give the same interval), vectorised in chunks.
* The win rate is the share of pairs where final > initial, ties counting half.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
_CHUNK_CELLS = 4_000_000
"""Resampled values drawn at once (bounds memory for large sets)."""


def mean_se(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "se", "n"}``; ``mean`` is ``None`` without values, ``se`` below two."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"mean": float(x.mean()), "se": se, "n": n}


def bootstrap_interval(diffs: Sequence[float], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (at least one value)."""
    import numpy as np

    d = np.asarray(diffs, dtype=np.float64)
    n = int(d.size)
    if n == 0:
        raise ValueError("the bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        means[start:start + rows] = d[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def win_rate(initial: Sequence[float], final: Sequence[float]) -> float | None:
    """Share of pairs with final > initial, ties counting half; ``None`` without pairs."""
    import numpy as np

    a = np.asarray(initial, dtype=np.float64)
    b = np.asarray(final, dtype=np.float64)
    if a.size == 0:
        return None
    return float(((b > a).sum() + 0.5 * (b == a).sum()) / a.size)


def paired(initial: Sequence[float], final: Sequence[float], *, resamples: int = RESAMPLES,
           seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict[str, Any]:
    """The ``initial`` / ``final`` / ``diff`` / ``win_rate`` block of one metric over paired values."""
    import numpy as np

    if len(initial) != len(final):
        raise ValueError(f"paired values differ in length ({len(initial)} and {len(final)})")
    diffs = (np.asarray(final, dtype=np.float64) - np.asarray(initial, dtype=np.float64)).tolist()
    diff: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "n": len(diffs)}
    if diffs:
        low, high = bootstrap_interval(diffs, resamples=resamples, seed=seed, level=level)
        diff.update(mean=float(np.mean(diffs)), ci_low=low, ci_high=high)
    return {"initial": mean_se(initial), "final": mean_se(final), "diff": diff,
            "win_rate": win_rate(initial, final)}


def summarize(rows: Sequence[Mapping[str, Any]], *, set_path: str, items: int, seeds: Sequence[int],
              systems: Sequence[Mapping[str, Any]], metrics: Sequence[str], resamples: int = RESAMPLES,
              seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict[str, Any]:
    """``summary.json``: per system its row counts, the critic's statistics and, per metric, the
    paired statistics over the rows that have both scores."""
    out = []
    for system in systems:
        mine = [r for r in rows if r["system"] == system["name"]]
        done = [r for r in mine if r["status"] == "done"]
        critic = [r.get("critic") or {} for r in done]
        block: dict[str, Any] = {
            **{k: system[k] for k in ("name", "hash", "profile", "overrides")},
            "rows": len(mine), "done": len(done), "failed": len(mine) - len(done),
            "critic": {"judged": sum(c.get("matched") is not None for c in critic),
                       "matched": sum(c.get("matched") is True for c in critic),
                       "gave_up": sum(bool(c.get("gave_up")) for c in critic),
                       "fell_back": sum(bool(c.get("fell_back")) for c in critic)},
            "metrics": {}}
        for metric in metrics:
            pairs = [(s["initial"], s["final"]) for r in done
                     if (s := (r.get("scores") or {}).get(metric)) is not None
                     and s.get("initial") is not None and s.get("final") is not None]
            block["metrics"][metric] = paired([p[0] for p in pairs], [p[1] for p in pairs],
                                              resamples=resamples, seed=seed, level=level)
        out.append(block)
    return {"set": set_path, "items": items, "seeds": list(seeds),
            "bootstrap": {"resamples": resamples, "seed": seed, "level": level}, "systems": out}
