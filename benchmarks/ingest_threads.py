"""Ingest benchmark: the pipeline against a plain one-thread loop and the model alone, per model size.

Not a test. For the clip plugin's tiny CLIP (fp32) and a full-size ViT-B/32 (random weights
through the real open_clip loading path, bf16), on the same synthetic 640×480 JPEGs, times in
interleaved rounds (so the machine's load hits every variant alike):

* the model alone: ``embed_preprocessed`` on batches of already-preprocessed images, with torch's
  thread setting as found (the anchor, as in ``indexing.py``) and with one torch thread;
* the plain loop on one Python thread, over the pipeline's own steps: scan, then per file
  sidecars + read + hash + reduced-scale decode + preprocess, and per batch the model and the
  corpus commit (vectors, then the SQLite transaction) — once with one torch thread, once with
  torch's setting; the best of the two (over all rounds) is the anchor;
* the pipeline: :func:`imagerag_sdk.index.ingest` on the folder (worker threads), three ways: the
  model's thread count chosen by the run itself (``pipe_run``; the threads seen inside each model
  call are printed, probe calls included), torch set to one thread (``pipe_fixed1``), and torch's
  setting throughout (``pipe_fixed``: the embedder's ``uses_torch_threads`` turned off).

Every round runs each variant once, starting at a different one each round. Prints images/s (the
median round) for each, then for each pipeline the per-round ratios to the best plain loop of the
same round (target ≥ 0.95 for the tiny model) and to the model alone at torch's setting (target
≥ 0.90 for ViT-B/32) as median (min-max), the largest difference between the pipeline's and the
plain loop's stored vectors, and the load average at each round's start. Needs the CLIP plugin
(``pip install -e plugins/imagerag-clip``).

    python benchmarks/ingest_threads.py --rounds 5 --tiny-images 512 --vit-images 128
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from indexing import write_images

from imagerag_sdk.index import CorpusStore, ingest
from imagerag_sdk.index.ingestion import embed_batch, input_side
from imagerag_sdk.index.items import NewItem
from imagerag_sdk.index.scan import decode_image, read_and_hash, read_sidecars, scan


def plain_loop(emb: Any, folder: Path, index_dir: Path, batch_size: int, threads: int) -> float:
    """Seconds for the pipeline's steps done one after another on this thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        side = input_side(emb)
        store = CorpusStore.open(None, index_dir, write=True)
        try:
            store.bind(root=folder, identity=emb.identity, spec={"use": emb.name})
            rows: list[NewItem] = []
            payloads: list[np.ndarray] = []
            for entry in scan(folder).files:
                fields, _ = read_sidecars(folder, entry)
                data, digest = read_and_hash(folder / entry.path)
                payloads.append(emb.preprocess(decode_image(data, entry.path, min_side=side)))
                rows.append(NewItem(entry.path, digest, entry.size, entry.mtime_ns, entry.sidecar_sig, fields))
                if len(payloads) == batch_size:
                    store.commit(rows, embed_batch(emb, payloads, True))
                    rows, payloads = [], []
            if payloads:
                store.commit(rows, embed_batch(emb, payloads, True))
        finally:
            store.close()
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def model_alone(emb: Any, pre: np.ndarray, batch_size: int, threads: int) -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        for i in range(0, len(pre), batch_size):
            embed_batch(emb, list(pre[i:i + batch_size]), True)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def stored(index_dir: Path) -> dict[str, np.ndarray]:
    store = CorpusStore.open(None, index_dir)
    try:
        items = store.items()
        return {p: store.get_vectors([it.label])[0] for p, it in items.items()}
    finally:
        store.close()


def pipeline(emb: Any, folder: Path, index_dir: Path, batch_size: int, policy: str, default: int) -> float:
    """Seconds for :func:`ingest` on the folder, the model's threads chosen by ``policy``: ``run``
    (the run's own choice), ``fixed1`` (torch set to one thread, so the run has nothing to choose)
    or ``fixed`` (torch's setting throughout: the embedder's ``uses_torch_threads`` turned off)."""
    import torch

    cls = type(emb)
    declared = cls.__dict__["uses_torch_threads"]
    if policy == "fixed1":
        torch.set_num_threads(1)
    elif policy == "fixed":
        cls.uses_torch_threads = False
    try:
        t0 = time.perf_counter()
        report = ingest(folder, index_dir=index_dir, embedder=emb, batch_size=batch_size)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(default)
        cls.uses_torch_threads = declared
    assert report.embedded == len(list(folder.glob("*.jpg"))), report.summary()
    return seconds


POLICIES = ("run", "fixed1", "fixed")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def run_case(name: str, emb: Any, images: int, rounds: int, batch_size: int, tmp: Path) -> dict[str, Any]:
    import torch

    default = torch.get_num_threads()
    folder = tmp / name
    folder.mkdir()
    write_images(folder, images)
    files = sorted(folder.glob("*.jpg"))
    side = input_side(emb)
    pre = np.stack([emb.preprocess(decode_image(p.read_bytes(), p.name, min_side=side)) for p in files])
    seen: list[int] = []
    inner = emb.embed_preprocessed

    def spy(batch: Any) -> np.ndarray:
        seen.append(torch.get_num_threads())
        return inner(batch)

    embed_batch(emb, list(pre[:batch_size]), True)  # warm-up
    plain_threads = sorted({1, default})
    variants: dict[str, Any] = {"model": lambda r: model_alone(emb, pre, batch_size, default)}
    if default != 1:
        variants["model_t1"] = lambda r: model_alone(emb, pre, batch_size, 1)
    for t in plain_threads:
        variants[f"plain_t{t}"] = lambda r, t=t: plain_loop(emb, folder, tmp / f"{name}-plain{t}-{r}", batch_size, t)
    for policy in POLICIES:
        variants[f"pipe_{policy}"] = lambda r, p=policy: pipeline(emb, folder, tmp / f"{name}-{p}-{r}", batch_size,
                                                                   p, default)
    secs: dict[str, list[float]] = {k: [] for k in variants}
    used: list[list[int]] = []
    loads: list[float] = []
    names = list(variants)
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        for key in names[r % len(names):] + names[:r % len(names)]:  # each round starts elsewhere
            seen.clear()
            emb.embed_preprocessed = spy
            try:
                secs[key].append(variants[key](r))
            finally:
                del emb.embed_preprocessed
            if key == "pipe_run":
                used.append(list(seen))
            assert torch.get_num_threads() == default, "the run must restore torch's thread setting"
    plain_keys = [k for k in secs if k.startswith("plain")]
    per_round_plain = [min(secs[k][r] for k in plain_keys) for r in range(rounds)]
    a, b = stored(tmp / f"{name}-run-0"), stored(tmp / f"{name}-plain{plain_threads[0]}-0")
    assert set(a) == set(b), "the pipeline and the plain loop must index the same files"
    fig: dict[str, Any] = {"images": images, "torch_threads": default,
                           "load_at_round_starts": " ".join(f"{x:.1f}" for x in loads),
                           "pipe_run_threads_per_call": " | ".join("".join(map(str, u)) for u in used)}
    fig.update({f"{k}_img_s_median": images / statistics.median(v) for k, v in secs.items()})
    for policy in POLICIES:
        pipe = secs[f"pipe_{policy}"]
        fig[f"pipe_{policy}_over_model"] = spread([m / s for m, s in zip(secs["model"], pipe, strict=True)])
        fig[f"pipe_{policy}_over_best_plain"] = spread([p / s for p, s in zip(per_round_plain, pipe, strict=True)])
    fig["max_abs_vector_diff_pipeline_vs_plain"] = float(max(np.abs(a[p] - b[p]).max() for p in a))
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tiny-images", type=int, default=512)
    ap.add_argument("--vit-images", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cases", default="tiny,vit")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    try:
        from imagerag_clip import ClipEmbedder
        from imagerag_clip.tiny import build_tiny_clip
    except ImportError:
        sys.exit("the CLIP plugin is not installed: pip install -e plugins/imagerag-clip")
    logging.disable(logging.WARNING)  # open_clip warns that random weights are random
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for case in args.cases.split(","):
            if case == "tiny":
                emb = ClipEmbedder({**build_tiny_clip(tmp / "tiny-model"), "device": "cpu", "dtype": "fp32",
                                    "batch_size": args.batch_size})
                images = args.tiny_images
            else:
                emb = ClipEmbedder(model="ViT-B-32", weights=None, device="cpu", dtype="bf16",
                                   batch_size=args.batch_size)
                images = args.vit_images
            emb.load()
            out[case] = run_case(case, emb, images, args.rounds, args.batch_size, tmp)
            print(f"[{case}]")
            for key, value in out[case].items():
                print(f"{key:>40}: {value:.4g}" if isinstance(value, float) else f"{key:>40}: {value}")
    out["load_average_end"] = os.getloadavg()[0]
    print(f"load average: {out['load_average_start']:.2f} at the start, {out['load_average_end']:.2f} at the end "
          f"({out['cpus']} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
