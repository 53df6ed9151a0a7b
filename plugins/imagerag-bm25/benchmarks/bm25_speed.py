"""Speed of the BM25 rerankers and of the corpus-wide BM25Index on synthetic captions (not a test).

    python plugins/imagerag-bm25/benchmarks/bm25_speed.py [--captions 100000] [--candidates 6]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from imagerag_bm25 import BM25Index, BM25Reranker, RRFReranker
from imagerag_sdk.types import Hit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captions", type=int, default=100_000, help="corpus size for BM25Index")
    ap.add_argument("--candidates", type=int, default=6, help="hits per rerank call")
    ap.add_argument("--words", type=int, default=12, help="words per caption")
    args = ap.parse_args()
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(20_000)]
    caps = [" ".join(rng.choices(vocab, k=args.words)) for _ in range(args.captions)]
    hits = [Hit(path=f"/c/{i}.png", score=0.3, metadata={"caption": caps[i]}) for i in range(args.candidates)]
    for reranker in (BM25Reranker(), RRFReranker()):
        reranker.rerank(caps[0], hits)
        n = 1000
        t = time.perf_counter()
        for i in range(n):
            reranker.rerank(caps[i % args.candidates], hits)
        print(f"{reranker.name}: {(time.perf_counter() - t) / n * 1e3:.2f} ms per query "
              f"({args.candidates} candidates)")
    items = [(f"/c/{i}.png", c) for i, c in enumerate(caps)]
    t = time.perf_counter()
    index = BM25Index(items)
    build = time.perf_counter() - t
    print(f"BM25Index build: {build:.1f} s for {len(index)} captions")
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        BM25Index(items, save_dir=folder)
        print(f"BM25Index build + save: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        loaded = BM25Index(items, save_dir=folder)
        load = time.perf_counter() - t
        assert loaded.loaded_from is not None
        print(f"BM25Index load of the saved index: {load:.2f} s ({build / load:.0f}x faster than a build)")
    t = time.perf_counter()
    for q in caps[:200]:
        index.search(q, 10)
    print(f"BM25Index search: {(time.perf_counter() - t) / 200 * 1e3:.2f} ms per query (k=10)")


if __name__ == "__main__":
    main()
