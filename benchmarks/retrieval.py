"""Retrieval benchmark: the corpus index's HNSW and exact backends, side by side in one run.

Not a test. Prints build vectors/s, single-query p50/p99 latency, batch-of-64 QPS, recall@10 against
the exact scan (image-like and shifted "text-like" queries), bytes per vector, save/load seconds,
the exact numpy scan with its GB/s next to the machine's measured memory bandwidth, the speedup,
the share of 10,000 indexed items that their own vector finds first,
and how hard the vectors are (local intrinsic dimensionality, top-1 / top-10 cosine).

    python benchmarks/retrieval.py --n 100000
    python benchmarks/retrieval.py --n 1000000 --json results-1m.json
    python benchmarks/retrieval.py --vectors my-clip-image-embeddings.npy [--text-vectors t.npy]
    python benchmarks/retrieval.py --n 1000000 --local-dim 32 --alpha 1   # a low-LID, easy variant
    python benchmarks/retrieval.py --n 1000000 --m 32 --ef-construction 200  # another graph

Data: synthetic CLIP-like vectors (see ``retrieval_data.py`` for the model), or real embeddings
from a ``.npy`` file: its first ``--n`` rows are indexed and the next ``--queries`` rows are the
image-like queries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retrieval_data import load_vectors, make_data, query_stats, random_pair_cosine

from imagerag_sdk.index.backends import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    ExactBackend,
    HnswBackend,
    query_ef,
)


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(truth, got, strict=True)]))


def bandwidth(x: np.ndarray, threads: int) -> dict[str, float]:
    """Read bandwidth: the best of a one-thread sum and ``threads`` threads each summing a slice
    of the matrix (numpy releases the GIL in reductions); copy bandwidth: read + write of 512 MB."""
    from concurrent.futures import ThreadPoolExecutor

    nbytes = x.nbytes
    flat = x.reshape(-1)
    parts = np.array_split(flat, max(1, threads))

    def one() -> None:
        flat.sum(dtype=np.float32)

    def many(pool) -> None:
        list(pool.map(lambda p: p.sum(dtype=np.float32), parts))

    best = float("inf")
    with ThreadPoolExecutor(max(1, threads)) as pool:
        many(pool)  # warm
        for fn in (one, lambda: many(pool)) * 3:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    read = nbytes / best / 1e9
    src = np.ones(min(x.size, 128 * 2**20), dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        t.append(time.perf_counter() - t0)
    copy = 2 * src.nbytes / min(t) / 1e9
    return {"read_gb_s": read, "copy_gb_s": copy}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None,
                    help="vectors indexed (100000, 1000000 …; default 100000, or all of --vectors)")
    ap.add_argument("--vectors", help="real embeddings (.npy, one row per item) instead of synthetic data")
    ap.add_argument("--text-vectors", help="with --vectors: text-query embeddings (.npy) for the shifted set")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=3000)
    ap.add_argument("--local-dim", type=int, default=0,
                    help="directions of variation within a cluster (0: isotropic noise over all d)")
    ap.add_argument("--alpha", type=float, default=0.0,
                    help="spectrum of the deviation: variance of direction i ∝ i^-alpha")
    ap.add_argument("--residual", type=float, default=0.1,
                    help="with --local-dim: share of the deviation's variance that is isotropic")
    ap.add_argument("--text-noise", type=float, default=0.7,
                    help="deviation of the text-like queries from their concept (images: 0.7)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--exact-queries", type=int, default=20, help="single queries timed on the exact scan")
    ap.add_argument("--ef-sweep", type=int, nargs="*", default=[200, 400],
                    help="also report recall and latency at these query ef values")
    ap.add_argument("--m", type=int, default=HNSW_M, help="HNSW graph degree (the index's default)")
    ap.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                    help="HNSW build breadth (the index's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hugepages", action="store_true",
                    help="re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc ≥ 2.35): hnswlib's "
                         "memory on transparent huge pages where the kernel allows them (madvise mode)")
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args(argv)


HUGETLB = "glibc.malloc.hugetlb=1"


def with_hugepages(argv: list[str] | None) -> None:
    """Re-execute this script with glibc's transparent-huge-page tunable (read at process start)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if HUGETLB in tunables.split(":"):
        return
    env = {**os.environ, "GLIBC_TUNABLES": ":".join(t for t in (tunables, HUGETLB) if t)}
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)], env)


def anon_hugepages_mb() -> float | None:
    """This process's anonymous memory on huge pages (Linux), or None where unknown."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    if args.hugepages:
        with_hugepages(argv)
    k = args.k
    fig: dict[str, object] = {"k": k, "ef": query_ef(k), "m": args.m, "ef_construction": args.ef_construction,
                              "threads": args.threads, "cpus": os.cpu_count(),
                              "tunables": os.environ.get("GLIBC_TUNABLES", "")}

    def say(name, value, fmt="{:.4g}"):
        fig[name] = value
        print(f"{name:>28}: {fmt.format(value) if isinstance(value, float) else value}", flush=True)

    t0 = time.perf_counter()
    if args.vectors:
        x, q_img, q_txt = load_vectors(args.vectors, args.n, args.queries, args.text_vectors)
        fig["data"] = {"vectors": args.vectors, "text_vectors": args.text_vectors}
    else:
        fig["data"] = {key: getattr(args, key) for key in
                       ("clusters", "local_dim", "alpha", "residual", "text_noise", "seed")}
        x, q_img, q_txt = make_data(args.n or 100_000, args.d, args.clusters, args.queries,
                                     local_dim=args.local_dim, alpha=args.alpha, residual=args.residual,
                                     text_noise=args.text_noise, seed=args.seed)
    n, d = x.shape
    fig.update(n=n, d=d)
    say("data_seconds", time.perf_counter() - t0)
    sets = {"image": q_img} if q_txt is None else {"image": q_img, "text": q_txt}

    bw = bandwidth(x, args.threads)
    say("mem_read_gb_s", bw["read_gb_s"])
    say("mem_copy_gb_s", bw["copy_gb_s"])

    exact = ExactBackend(x)
    t0 = time.perf_counter()
    truth = {}
    for name, q in sets.items():
        labels, sims = exact.search(q, max(k, 20))
        truth[name] = labels[:, :k]
        for key, value in query_stats(sims).items():
            say(f"{name}_query_{key}", value)
    say("random_pair_cosine", random_pair_cosine(x, np.random.default_rng(args.seed)))
    say("exact_batch_qps", len(sets) * args.queries / (time.perf_counter() - t0))
    times = []
    for q in q_img[: args.exact_queries]:
        t0 = time.perf_counter()
        exact.search(q[None], k)
        times.append(time.perf_counter() - t0)
    exact_p50 = float(np.median(times))
    say("exact_single_p50_ms", exact_p50 * 1e3)
    say("exact_scan_gb_s", x.nbytes / exact_p50 / 1e9)
    floor = x.nbytes / (bw["read_gb_s"] * 1e9)
    say("exact_vs_bandwidth_floor", exact_p50 / floor, "{:.3f}x")

    print(f"  load average before build: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    c0 = time.process_time()
    t0 = time.perf_counter()
    hnsw = HnswBackend(d, capacity=n, threads=args.threads, m=args.m, ef_construction=args.ef_construction)
    step = 50_000
    for s in range(0, n, step):
        hnsw.add(x[s:s + step], np.arange(s, min(s + step, n)))
        done = min(s + step, n)
        print(f"  built {done}/{n} ({done / (time.perf_counter() - t0):.0f} vec/s)",
              file=sys.stderr, flush=True)
    build = time.perf_counter() - t0
    say("build_seconds", build)
    say("build_vectors_per_s", n / build)
    cpu = time.process_time() - c0
    say("build_cpu_seconds", cpu)
    say("build_vectors_per_s_if_idle", n / (cpu / args.threads))
    fig["load_average"] = os.getloadavg()[0]
    huge = anon_hugepages_mb()
    if huge is not None:
        say("anon_hugepages_mb", huge, "{:.0f}")

    for name, q in sets.items():
        got, _ = hnsw.search(q, k)
        say(f"recall@{k}_{name}_queries", recall(truth[name], got))
    # an indexed item queried with its own vector should come back first (or an exact duplicate)
    own = np.random.default_rng(args.seed).choice(n, min(n, 10_000), replace=False)
    first = hnsw.search(x[own], 1)[0][:, 0]
    say("self_found_first", float(np.mean(np.einsum("ij,ij->i", x[first], x[own]) >= 1 - 1e-6)))

    lat, cpu_lat = [], []
    for name, qs in sets.items():
        mine = []
        for q in qs:
            c0 = time.thread_time()
            t0 = time.perf_counter()
            hnsw.search(q[None], k)
            mine.append(time.perf_counter() - t0)
            cpu_lat.append(time.thread_time() - c0)
        say(f"hnsw_single_p50_ms_{name}_queries", float(np.percentile(mine, 50)) * 1e3)
        lat += mine
    lat = np.array(lat)
    say("hnsw_single_p50_ms", float(np.percentile(lat, 50)) * 1e3)
    say("hnsw_single_p99_ms", float(np.percentile(lat, 99)) * 1e3)
    say("hnsw_single_p50_cpu_ms", float(np.percentile(cpu_lat, 50)) * 1e3)
    batches = [q_img[i:i + 64] for i in range(0, len(q_img) - 63, 64)]
    t0 = time.perf_counter()
    for b in batches:
        hnsw.search(b, k)
    if batches:
        say("hnsw_batch64_qps", 64 * len(batches) / (time.perf_counter() - t0))
    say("speedup_vs_exact", exact_p50 / float(np.percentile(lat, 50)), "{:.0f}x")
    for ef in args.ef_sweep:
        parts = [f"{name} {recall(truth[name], hnsw.search(q, k, ef=ef)[0]):.4f}" for name, q in sets.items()]
        sweep = []
        for q in q_txt[:300] if q_txt is not None else q_img[:300]:
            t0 = time.perf_counter()
            hnsw.search(q[None], k, ef=ef)
            sweep.append(time.perf_counter() - t0)
        say(f"ef={ef}", f"recall@{k} {', '.join(parts)}; p50 {np.percentile(sweep, 50) * 1e3:.3f} ms")

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "hnsw.bin"
        t0 = time.perf_counter()
        hnsw.save(path)
        say("save_seconds", time.perf_counter() - t0)
        say("hnsw_bytes_per_vector", path.stat().st_size / n, "{:.0f}")
        say("raw_npy_bytes_per_vector", float(d * 4), "{:.0f}")
        del hnsw
        t0 = time.perf_counter()
        loaded = HnswBackend.load(path, d, threads=args.threads)
        say("load_seconds", time.perf_counter() - t0)
        again, _ = loaded.search(q_img[:100], k)
        say(f"recall@{k}_after_load", recall(truth["image"][:100], again))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    return fig


if __name__ == "__main__":
    main()
