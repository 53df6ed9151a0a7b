"""Exact scan benchmark: the corpus index's exact backend against its anchors, side by side in one run.

Not a test. For a batch of queries: queries/s of ``ExactBackend.search`` against faiss
``IndexFlatIP`` (when faiss is importable), against the matrix product alone (numpy/BLAS, no
top-k: the floor for any exact scan built on BLAS) and against the previous batched code (kept
below as ``old_search``, the version before the blocked top-k). For one query: p50 of the new and
old code against the memory-bandwidth floor. The batch is cut into parts of ``--part`` queries;
each part runs on each contender in turn, ``--rounds`` times, and each figure adds up the best
time of each part, so that load from other jobs shifts the contenders alike.

    python benchmarks/exact_batch.py --n 200000 --queries 2000
    PYTHONPATH=/path/to/faiss python benchmarks/exact_batch.py --n 1000000 --json exact-1m.json
    python benchmarks/exact_batch.py --vectors /tmp/minilm/vectors.npy --queries 2000

It also checks that the new code returns the old code's hits (``same_hits``: the share of
queries whose labels agree, ties aside) and faiss's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retrieval import bandwidth
from retrieval_data import load_vectors, make_data

from imagerag_sdk.index.backends import ExactBackend


def old_search(backend: ExactBackend, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The batched exact search before this benchmark existed, for the side-by-side figures:
    chunks of 256 MB of scores over all rows (67 queries at 1M), argpartition over the negated
    scores, a sort of the selected ``k``; one query over ≥ 50k rows takes the threaded path."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    n = len(backend.vectors)
    kk = min(k, n)
    threads = os.cpu_count() or 1
    if len(queries) == 1 and n >= 50_000 and threads > 1:
        idx, top = backend._top_one(queries[0], kk, threads)  # unchanged by the new code
        order = np.argsort(-top, kind="stable")
        return backend.labels[idx[order]][None], top[order][None].astype(np.float32)
    chunk = max(1, int(2**28 // max(1, n * 4)))
    all_l, all_s = [], []
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ backend.vectors.T
        if kk < n:
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(n), (len(scores), n))
        top = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
        all_l.append(backend.labels[idx])
        all_s.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(all_l), np.concatenate(all_s).astype(np.float32)


def matmul_only(x: np.ndarray, queries: np.ndarray, rows: int = 1024) -> None:
    """The scores alone, in blocks of ``rows`` queries × 16,384 vectors (no top-k)."""
    cols = 16_384
    for q0 in range(0, len(queries), rows):
        for c0 in range(0, len(x), cols):
            queries[q0:q0 + rows] @ x[c0:c0 + cols].T


def rotated(names: list[str], i: int) -> list[str]:
    """The contenders in turn, starting one further each time, so that none always runs first."""
    i %= len(names)
    return names[i:] + names[:i]


def same_hits(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose label sets agree (order within a tie may differ between engines)."""
    return float(np.mean([set(p) == set(q) for p, q in zip(a, b, strict=True)]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="vectors (default 200000, or all of --vectors)")
    ap.add_argument("--vectors", help="real embeddings (.npy) instead of synthetic data")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=2000, help="queries in the timed batch")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    ap.add_argument("--part", type=int, default=1000, help="queries per timed call: the batch is cut so")
    ap.add_argument("--single", type=int, default=20, help="single queries timed per round")
    ap.add_argument("--no-faiss", action="store_true", help="skip the faiss anchor even if importable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    k = args.k
    if args.vectors:
        x, q, _ = load_vectors(args.vectors, args.n, args.queries)
    else:
        x, q, _ = make_data(args.n or 200_000, args.d, args.clusters, args.queries, seed=args.seed)
    n, d = x.shape
    fig: dict[str, object] = {"n": n, "d": d, "k": k, "queries": len(q), "cpus": os.cpu_count(),
                              "load_average": os.getloadavg()[0]}

    def say(name: str, value: object, fmt: str = "{:.4g}") -> None:
        fig[name] = value
        print(f"{name:>30}: {fmt.format(value) if isinstance(value, float) else value}", flush=True)

    exact = ExactBackend(x)
    faiss_index = None
    if not args.no_faiss:
        try:
            import faiss
        except ImportError:
            print("  faiss is not importable: its anchor is skipped (pip install faiss-cpu)", file=sys.stderr)
        else:
            faiss_index = faiss.IndexFlatIP(d)
            faiss_index.add(x)
    fig["faiss"] = faiss_index is not None

    batch: dict[str, Callable[[np.ndarray], object]] = {
        "new": lambda b: exact.search(b, k),
        "old": lambda b: old_search(exact, b, k),
        "matmul_only": lambda b: matmul_only(x, b),
    }
    if faiss_index is not None:
        batch["faiss"] = lambda b: faiss_index.search(b, k)
    parts = [q[s:s + args.part] for s in range(0, len(q), args.part)]
    best = {(name, i): float("inf") for name in batch for i in range(len(parts))}
    for _ in range(max(1, args.rounds)):
        for i, part in enumerate(parts):  # each part of the batch on each contender in turn
            for name in rotated(list(batch), i):
                t0 = time.perf_counter()
                batch[name](part)
                best[name, i] = min(best[name, i], time.perf_counter() - t0)
    total = {name: sum(best[name, i] for i in range(len(parts))) for name in batch}
    for name, seconds in total.items():
        say(f"batch_qps_{name}", len(q) / seconds)
    best = total
    say("batch_new_vs_old", best["old"] / best["new"], "{:.2f}x")
    say("batch_new_vs_matmul_only", best["matmul_only"] / best["new"], "{:.2f}x")
    if faiss_index is not None:
        say("batch_new_vs_faiss", best["faiss"] / best["new"], "{:.2f}x")

    new_l, new_s = exact.search(q, k)
    old_l, old_s = old_search(exact, q, k)
    say("same_hits_as_old", same_hits(new_l, old_l))
    say("max_score_diff_vs_old", float(np.max(np.abs(new_s - old_s))))
    if faiss_index is not None:
        say("same_hits_as_faiss", same_hits(new_l, faiss_index.search(q, k)[1]))

    single: dict[str, Callable[[np.ndarray], object]] = {
        "new": lambda v: exact.search(v[None], k),
        "old": lambda v: old_search(exact, v[None], k),
    }
    if faiss_index is not None:
        single["faiss"] = lambda v: faiss_index.search(v[None], k)
    times: dict[str, list[float]] = {name: [] for name in single}
    for _ in range(max(1, args.rounds)):
        for i, v in enumerate(q[:args.single]):
            # faiss first (its OpenMP threads spin for a moment after a call, slowing the next
            # one), then the new and old code, each second half of the time
            pair = ["new", "old"] if i % 2 == 0 else ["old", "new"]
            for name in [n for n in single if n not in pair] + pair:
                t0 = time.perf_counter()
                single[name](v)
                times[name].append(time.perf_counter() - t0)
    floor = x.nbytes / (bandwidth(x, os.cpu_count() or 1)["read_gb_s"] * 1e9)
    for name, t in times.items():
        p50 = float(np.median(t))
        say(f"single_p50_ms_{name}", p50 * 1e3)
        say(f"single_{name}_vs_bandwidth_floor", p50 / floor, "{:.3f}x")
    say("single_new_vs_old", float(np.median(times["old"]) / np.median(times["new"])), "{:.2f}x")
    say("load_average_after", os.getloadavg()[0], "{:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    return fig


if __name__ == "__main__":
    main()
