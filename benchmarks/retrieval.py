"""Retrieval benchmark: the corpus index's HNSW and exact backends on synthetic CLIP-like vectors.

Not a test. Prints build vectors/s, single-query p50/p99 latency, batch-of-64 QPS, recall@10 against
the exact scan (image-like and shifted "text-like" queries), bytes per vector, save/load seconds,
the exact numpy scan with its GB/s next to the machine's measured memory bandwidth, and the speedup.

    python benchmarks/retrieval.py --n 100000
    python benchmarks/retrieval.py --n 1000000 --json results-1m.json

Data: a Gaussian mixture of ``--clusters`` centres on the unit sphere that share a common
direction (CLIP embeddings sit in a narrow cone), points = centre + isotropic Gaussian noise,
normalised. ``--alpha A`` gives the noise a decaying spectrum instead (variance of dimension
i ∝ i^-A; A = 1 concentrates it in ~30 directions), which makes neighbours nearly equidistant
and is much harder for HNSW.
Image-like queries are fresh points of the same mixture; text-like queries sit around the same
semantic directions but in another cone (CLIP's "modality gap"), so they lie outside the data's
cone and their best cosine is low, as for CLIP text→image (``--text-noise`` adds query noise).
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

from imagerag_sdk.index.backends import ExactBackend, HnswBackend, query_ef  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def noise_scales(d: int, alpha: float) -> np.ndarray:
    """Per-dimension noise scale with variance ∝ i^-alpha, total variance 1 (alpha 0 = isotropic)."""
    var = (np.arange(1, d + 1, dtype=np.float64)) ** -alpha
    return np.sqrt(var / var.sum()).astype(np.float32)


def mixture(rng, n, d, centres, noise, scales, chunk=100_000) -> np.ndarray:
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        idx = rng.integers(0, len(centres), m)
        block = centres[idx] + rng.standard_normal((m, d), dtype=np.float32) * (noise * scales)
        out[s:s + m] = unit(block)
    return out


def make_data(n, d, clusters, queries, alpha=0.0, text_noise=0.7, seed=0):
    """Image vectors around ``clusters`` semantic directions inside an "image" cone; image-like
    queries from the same mixture; text-like queries around the same semantic directions but in
    another cone (CLIP's modality gap), with ``text_noise``."""
    rng = np.random.default_rng(seed)
    scales = noise_scales(d, alpha)
    semantic = unit(rng.standard_normal((clusters, d), dtype=np.float32))
    cone_img = unit(rng.standard_normal((1, d), dtype=np.float32))
    cone_txt = unit(rng.standard_normal((1, d), dtype=np.float32))
    centres = unit(0.6 * cone_img + semantic)
    x = mixture(rng, n, d, centres, 0.7, scales)
    q_img = mixture(rng, queries, d, centres, 0.7, scales)
    q_txt = mixture(rng, queries, d, unit(1.2 * cone_txt + semantic), text_noise, scales)
    return x, q_img.astype(np.float32), q_txt.astype(np.float32)


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(truth, got)]))


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="corpus size (100000, 1000000 …)")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=0.0,
                    help="noise spectrum exponent: variance of dim i ∝ i^-alpha (0: isotropic "
                         "Gaussian mixture; 1: effective rank ~30, harder for HNSW)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--exact-queries", type=int, default=20, help="single queries timed on the exact scan")
    ap.add_argument("--text-noise", type=float, default=0.7,
                    help="noise of the text-like queries (images: 0.7); 1.3 makes them nearly random")
    ap.add_argument("--ef-sweep", type=int, nargs="*", default=[200, 400],
                    help="also report recall and latency at these query ef values")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    k = args.k
    fig: dict[str, object] = {"n": args.n, "d": args.d, "clusters": args.clusters, "k": k,
                              "threads": args.threads, "alpha": args.alpha, "text_noise": args.text_noise, "ef": query_ef(k), "cpus": os.cpu_count()}

    def say(name, value, fmt="{:.4g}"):
        fig[name] = value
        print(f"{name:>28}: {fmt.format(value) if isinstance(value, float) else value}", flush=True)

    t0 = time.perf_counter()
    x, q_img, q_txt = make_data(args.n, args.d, args.clusters, args.queries, args.alpha,
                                 args.text_noise)
    say("data_seconds", time.perf_counter() - t0)

    bw = bandwidth(x, args.threads)
    say("mem_read_gb_s", bw["read_gb_s"])
    say("mem_copy_gb_s", bw["copy_gb_s"])

    exact = ExactBackend(x)
    t0 = time.perf_counter()
    truth_img, _ = exact.search(q_img, k)
    truth_txt, s_txt = exact.search(q_txt, k)
    say("exact_batch_qps", 2 * args.queries / (time.perf_counter() - t0))
    say("text_query_top1_cosine", float(np.median(s_txt[:, 0])))
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
    hnsw = HnswBackend(args.d, capacity=args.n, threads=args.threads)
    step = 50_000
    for s in range(0, args.n, step):
        hnsw.add(x[s:s + step], np.arange(s, min(s + step, args.n)))
        done = min(s + step, args.n)
        rate = done / (time.perf_counter() - t0)
        print(f"  built {done}/{args.n} ({rate:.0f} vec/s)", file=sys.stderr, flush=True)
    build = time.perf_counter() - t0
    say("build_seconds", build)
    say("build_vectors_per_s", args.n / build)
    cpu = time.process_time() - c0
    say("build_cpu_seconds", cpu)
    say("build_vectors_per_s_if_idle", args.n / (cpu / args.threads))
    fig["load_average"] = os.getloadavg()[0]

    got_img, _ = hnsw.search(q_img, k)
    got_txt, _ = hnsw.search(q_txt, k)
    say("recall@10_image_queries", recall(truth_img, got_img))
    say("recall@10_text_queries", recall(truth_txt, got_txt))

    lat, cpu_lat = [], []
    for q in np.concatenate([q_img, q_txt]):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        hnsw.search(q[None], k)
        lat.append(time.perf_counter() - t0)
        cpu_lat.append(time.thread_time() - c0)
    lat = np.array(lat)
    say("hnsw_single_p50_ms", float(np.percentile(lat, 50)) * 1e3)
    say("hnsw_single_p99_ms", float(np.percentile(lat, 99)) * 1e3)
    say("hnsw_single_p50_cpu_ms", float(np.percentile(cpu_lat, 50)) * 1e3)
    batches = [q_img[i:i + 64] for i in range(0, len(q_img) - 63, 64)]
    t0 = time.perf_counter()
    for b in batches:
        hnsw.search(b, k)
    say("hnsw_batch64_qps", 64 * len(batches) / (time.perf_counter() - t0))
    say("speedup_vs_exact", exact_p50 / float(np.percentile(lat, 50)), "{:.0f}x")
    for ef in args.ef_sweep:
        got_img, _ = hnsw.search(q_img, k, ef=ef)
        got_txt, _ = hnsw.search(q_txt, k, ef=ef)
        sweep = []
        for q in q_txt[:300]:
            t0 = time.perf_counter()
            hnsw.search(q[None], k, ef=ef)
            sweep.append(time.perf_counter() - t0)
        say(f"ef={ef}", f"recall@10 image {recall(truth_img, got_img):.4f}, text {recall(truth_txt, got_txt):.4f}, "
                        f"text p50 {np.percentile(sweep, 50) * 1e3:.3f} ms")

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "hnsw.bin"
        t0 = time.perf_counter()
        hnsw.save(path)
        say("save_seconds", time.perf_counter() - t0)
        size = path.stat().st_size
        say("hnsw_bytes_per_vector", size / args.n, "{:.0f}")
        say("raw_npy_bytes_per_vector", float(args.d * 4), "{:.0f}")
        del hnsw
        t0 = time.perf_counter()
        loaded = HnswBackend.load(path, args.d, threads=args.threads)
        say("load_seconds", time.perf_counter() - t0)
        again, _ = loaded.search(q_img[:100], k)
        say("recall@10_after_load", recall(truth_img[:100], again))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()
