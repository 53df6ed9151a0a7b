"""Search breadth benchmark: recall@k and single-query p50 of the HNSW index at several query ``ef``,
for two query sets side by side, to choose the default (``query_ef`` in the index's backends).

Not a test. Real embeddings are the reference (the synthetic mixture of ``retrieval_data.py`` is a
stress test, not the basis of a default):

    python benchmarks/sentence_vectors.py --out /tmp/minilm --rows 65536   # see its docstring
    python benchmarks/ef_choice.py --vectors /tmp/minilm/vectors.npy \\
        --text-vectors /tmp/minilm/keywords.npy --ef 100 120 150 200

The first ``--n`` rows of ``--vectors`` are indexed, the next ``--queries`` rows are the
"sentence" queries, ``--text-vectors`` the "keyword" queries. Each graph is built with the
index's defaults; ``--builds`` > 1 averages over graphs (the parallel build is not
deterministic). The single-query timings go round the ef values query by query, so load from
other jobs shifts them alike. Prints the smallest ef whose recall meets ``--target`` for every
query set, and what the index's default gives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retrieval import recall
from retrieval_data import load_vectors, make_data

from imagerag_sdk.index.backends import ExactBackend, HnswBackend, query_ef


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", help="real embeddings (.npy); without it, the synthetic mixture")
    ap.add_argument("--text-vectors", help="with --vectors: the second (keyword) query set (.npy)")
    ap.add_argument("--n", type=int, default=None, help="vectors indexed (default: all but the queries)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, nargs="+", default=[100, 120, 150, 200])
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--builds", type=int, default=1)
    ap.add_argument("--timed", type=int, default=300, help="single queries timed per set and ef")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    k = args.k
    if args.vectors:
        x, q1, q2 = load_vectors(args.vectors, args.n, args.queries, args.text_vectors)
    else:
        x, q1, q2 = make_data(args.n or 20_000, 384, 300, args.queries)
    sets = {"sentence": q1} if q2 is None else {"sentence": q1, "keyword": q2}
    default = query_ef(k)
    efs = sorted(set(args.ef) | {default})
    fig: dict[str, object] = {"n": len(x), "d": x.shape[1], "k": k, "default_ef": default,
                              "load_average": os.getloadavg()[0]}
    exact = ExactBackend(x)
    truth = {name: exact.search(q, k)[0] for name, q in sets.items()}
    rec = {(name, ef): 0.0 for name in sets for ef in efs}
    times: dict[tuple[str, int], list[float]] = {(name, ef): [] for name in sets for ef in efs}
    for _ in range(max(1, args.builds)):
        hnsw = HnswBackend.build(x, np.arange(len(x)), threads=args.threads)
        for name, q in sets.items():
            for ef in efs:
                rec[name, ef] += recall(truth[name], hnsw.search(q, k, ef=ef)[0]) / max(1, args.builds)
            for i, v in enumerate(q[:args.timed]):
                for ef in efs[i % len(efs):] + efs[:i % len(efs)]:  # each ef first in turn
                    t0 = time.perf_counter()
                    hnsw.search(v[None], k, ef=ef)
                    times[name, ef].append(time.perf_counter() - t0)
    rows = {}
    for ef in efs:
        row = {f"recall_{name}": rec[name, ef] for name in sets}
        row.update({f"p50_ms_{name}": float(np.median(times[name, ef])) * 1e3 for name in sets})
        rows[ef] = row
        mark = " (default)" if ef == default else ""
        print(f"ef {ef:>4}{mark}: " + ", ".join(f"{name} recall@{k} {rec[name, ef]:.4f} p50 "
                                                 f"{row[f'p50_ms_{name}']:.3f} ms" for name in sets),
              flush=True)
    fig["rows"] = rows
    meets = [ef for ef in efs if all(rec[name, ef] >= args.target for name in sets)]
    fig["smallest_ef_meeting_target"] = meets[0] if meets else None
    fig["default_meets_target"] = default in meets
    print(f"smallest ef with recall@{k} >= {args.target} for every set: {fig['smallest_ef_meeting_target']}; "
          f"default ef {default} {'meets' if default in meets else 'misses'} it "
          f"(n = {len(x):,}, load average {os.getloadavg()[0]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    return fig


if __name__ == "__main__":
    main()
