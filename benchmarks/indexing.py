"""Ingest benchmark: images/s of the whole ``imagerag index`` pipeline vs the model alone.

Not a test. Writes ``--images`` synthetic 640×480 JPEGs, then times

* the model alone: ``embed_preprocessed`` on batches of already-preprocessed images;
* the pipeline: :func:`imagerag_sdk.index.ingest` on the folder (scan, hash, decode, preprocess in
  worker threads, model, SQLite commits), with the same embedder instance, already loaded —
  with reduced-scale JPEG decoding (the default) and with ``draft_jpeg=False``;

and prints both and their ratio (target ≥ 0.90). Needs the CLIP plugin
(``pip install -e plugins/imagerag-clip``): full-size ViT-B/32 with random weights in bf16.

    python benchmarks/indexing.py --images 256
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import ingest
from imagerag_sdk.index.scan import decode_image
from imagerag_sdk.specs import ComponentSpec


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(count):
        a, b, c = rng.uniform(0.005, 0.05, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], axis=-1)
        noise = rng.normal(0, 0.15, base.shape)
        img = ((base + noise) * 0.5 + 0.5).clip(0, 1) * 255
        Image.fromarray(img.astype(np.uint8)).save(folder / f"img{i:05d}.jpg", quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    try:
        import imagerag_clip  # noqa: F401
    except ImportError:
        sys.exit("the CLIP plugin is not installed: pip install -e plugins/imagerag-clip")
    fig: dict[str, object] = {"images": args.images, "batch_size": args.batch_size, "model": args.model,
                              "dtype": args.dtype, "cpus": os.cpu_count()}
    spec = ComponentSpec(use="clip", model=args.model, weights=None, dtype=args.dtype, device="cpu",
                         batch_size=args.batch_size)
    emb = spec.build("embedder")
    t0 = time.perf_counter()
    emb.load()
    fig["model_load_seconds"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        write_images(folder, args.images)
        files = sorted(folder.glob("*.jpg"))
        t0 = time.perf_counter()
        pre = np.stack([emb.preprocess(load_rgb(p)) for p in files])
        fig["decode_preprocess_img_s_one_thread"] = len(files) / (time.perf_counter() - t0)
        emb.embed_preprocessed(pre[: args.batch_size])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(pre), args.batch_size):
            emb.embed_preprocessed(pre[i:i + args.batch_size])
        model_s = time.perf_counter() - t0
        fig["model_alone_img_s"] = len(pre) / model_s
        t0 = time.perf_counter()
        report = ingest(folder, index_dir=Path(tmp) / "index", embedder=emb, batch_size=args.batch_size,
                        workers=args.workers)
        pipe_s = time.perf_counter() - t0
        assert report.embedded == len(files), report.summary()
        fig["pipeline_img_s"] = len(files) / pipe_s
        fig["pipeline_over_model"] = fig["pipeline_img_s"] / fig["model_alone_img_s"]
        t0 = time.perf_counter()
        report = ingest(folder, index_dir=Path(tmp) / "index-full", embedder=emb,
                        batch_size=args.batch_size, workers=args.workers, draft_jpeg=False)
        fig["pipeline_full_decode_img_s"] = len(files) / (time.perf_counter() - t0)
        fig["full_decode_over_model"] = fig["pipeline_full_decode_img_s"] / fig["model_alone_img_s"]
        side = max(emb.preprocess_spec.size)
        some = files[:16]
        full = emb.embed_preprocessed(np.stack([emb.preprocess(load_rgb(p)) for p in some]))
        draft = emb.embed_preprocessed(np.stack([emb.preprocess(decode_image(p.read_bytes(), p.name, min_side=side))
                                                 for p in some]))
        fig["draft_vs_full_cosine_min"] = float(np.min(np.sum(full * draft, axis=1)))
        fig["load_average"] = os.getloadavg()[0]
    for key, value in fig.items():
        print(f"{key:>36}: {value:.4g}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()
