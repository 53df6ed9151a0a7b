"""Does a data set favour a cluster index over a graph? IVF-flat against the HNSW index, one run.

Not a test, and IVF is not a backend of the SDK: this measures whether a vector set rewards a
cluster index (k-means lists, scan the lists nearest the query) more than the corpus index's HNSW
graph. On a clean Gaussian mixture — the synthetic data of ``retrieval.py`` — the k-means lists
recover the mixture's clusters and a few lists hold every neighbour; on real embeddings the
neighbours of a query are spread over many lists. Prints build vectors/s, recall@k against the
exact scan and single-query p50 for IVF at several ``nprobe`` and for HNSW at several ``ef``.

    python benchmarks/ivf_check.py --n 1000000                      # synthetic, as retrieval.py
    python benchmarks/ivf_check.py --vectors embeddings.npy --nlist 256 1024

IVF here: spherical k-means on a sample (40 rows per list, 10 rounds), every vector assigned to its
nearest centroid, vectors stored grouped by list; a query ranks all centroids exactly, scans the
``nprobe`` best lists with numpy and keeps the top k.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retrieval import recall
from retrieval_data import load_vectors, make_data

from imagerag_sdk.index.backends import HNSW_EF_CONSTRUCTION, HNSW_M, ExactBackend, HnswBackend


def nearest(x: np.ndarray, c: np.ndarray, step: int = 8192) -> np.ndarray:
    return np.concatenate([np.argmax(x[s:s + step] @ c.T, axis=1) for s in range(0, len(x), step)])


def kmeans(x: np.ndarray, nlist: int, rng: np.random.Generator, rounds: int = 10) -> np.ndarray:
    """Unit centroids of a spherical k-means on a sample of ``x``; an empty list is re-seeded."""
    sample = x[np.sort(rng.choice(len(x), min(len(x), 40 * nlist), replace=False))]
    c = sample[rng.choice(len(sample), nlist, replace=False)].copy()
    for _ in range(rounds):
        assign = nearest(sample, c)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, sample)
        empty = np.bincount(assign, minlength=nlist) == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
        c = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return c


class Ivf:
    def __init__(self, x: np.ndarray, nlist: int, seed: int = 1) -> None:
        self.c = kmeans(x, nlist, np.random.default_rng(seed))
        assign = nearest(x, self.c)
        self.order = np.argsort(assign, kind="stable")
        self.x = x[self.order]
        self.bounds = np.searchsorted(assign[self.order], np.arange(nlist + 1))

    def search(self, q: np.ndarray, k: int, nprobe: int) -> np.ndarray:
        lists = np.argpartition(-(self.c @ q), nprobe - 1)[:nprobe]
        spans = [(self.bounds[i], self.bounds[i + 1]) for i in lists]
        scores = np.concatenate([self.x[a:b] @ q for a, b in spans])
        ids = np.concatenate([self.order[a:b] for a, b in spans])
        kk = min(k, len(scores))
        top = np.argpartition(-scores, kk - 1)[:kk]
        return ids[top[np.argsort(-scores[top])]]


def p50_ms(fn, queries: np.ndarray) -> float:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def measure_hnsw(x: np.ndarray, sets: dict, truth: dict, k: int, efs: list[int], threads: int,
                 fig: dict[str, float]) -> None:
    n, d = x.shape
    t0 = time.perf_counter()
    hnsw = HnswBackend(d, capacity=n, threads=threads, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
    hnsw.add(x, np.arange(n))
    print(f"HNSW M={HNSW_M} ef_construction={HNSW_EF_CONSTRUCTION}: build "
          f"{n / (time.perf_counter() - t0):,.0f} vec/s ({threads} threads)", flush=True)
    for ef in efs:
        row = [f"ef {ef:>4}"]
        for name, q in sets.items():
            fig[f"hnsw_ef{ef}_{name}_recall"] = r = recall(truth[name], hnsw.search(q, k, ef=ef)[0])
            ms = p50_ms(lambda v, ef=ef: hnsw.search(v[None], k, ef=ef), q)
            row.append(f"{name} recall {r:.4f} p50 {ms:.3f} ms")
        print("  " + "; ".join(row), flush=True)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print the comparison; return the recall figures, keyed like ``ivf4096_probe3_text_recall``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="vectors (synthetic default 100000)")
    ap.add_argument("--vectors", help="real embeddings (.npy); the rows after --n are the queries")
    ap.add_argument("--text-vectors", help="with --vectors: a second, shifted query set (.npy)")
    ap.add_argument("--clusters", type=int, default=3000, help="synthetic data: mixture components")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--ef", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    if args.vectors:
        x, q_img, q_txt = load_vectors(args.vectors, args.n, args.queries, args.text_vectors)
    else:
        x, q_img, q_txt = make_data(args.n or 100_000, 512, args.clusters, args.queries)
    sets = {"image": q_img} if q_txt is None else {"image": q_img, "text": q_txt}
    n, d = x.shape
    k = args.k
    print(f"n = {n}, d = {d}, k = {k}, {len(q_img)} queries per set", flush=True)
    exact = ExactBackend(x)
    truth = {name: exact.search(q, k)[0] for name, q in sets.items()}
    fig: dict[str, float] = {}
    measure_hnsw(x, sets, truth, k, args.ef, args.threads, fig)

    for nlist in args.nlist:
        t0 = time.perf_counter()
        ivf = Ivf(x, nlist)
        sizes = np.diff(ivf.bounds)
        print(f"IVF nlist={nlist}: build {n / (time.perf_counter() - t0):,.0f} vec/s; list size mean "
              f"{sizes.mean():.0f}, max {sizes.max()}", flush=True)
        for nprobe in args.nprobe:
            if nprobe > nlist:
                continue
            row = [f"nprobe {nprobe:>3} ({nprobe / nlist:.1%} of lists)"]
            for name, q in sets.items():
                got = np.stack([np.pad(ivf.search(v, k, nprobe), (0, k), constant_values=-1)[:k] for v in q])
                fig[f"ivf{nlist}_probe{nprobe}_{name}_recall"] = r = recall(truth[name], got)
                ms = p50_ms(lambda v, ivf=ivf, nprobe=nprobe: ivf.search(v, k, nprobe), q)
                row.append(f"{name} recall {r:.4f} p50 {ms:.3f} ms")
            print("  " + "; ".join(row), flush=True)
    return fig


if __name__ == "__main__":
    main()
