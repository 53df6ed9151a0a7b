"""Measured check (not a test): full-size ViT-B-32 image tower, random weights, fp32 vs bf16.

Loads through the real embedder path (weights: null = seeded random init), feeds the same batch of
preprocessed JPEG-decoded images to both in interleaved rounds, and prints images/s per dtype and
the cosine between their rows; also PIL vs open_clip/torchvision preprocessing speed on 640×480 JPEGs.

    HF_HUB_OFFLINE=1 python plugins/imagerag-clip/benchmarks/dtype_speed.py [--batches 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import time

import numpy as np
from PIL import Image


def _jpegs(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", default="fp32,bf16")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from imagerag_clip import ClipEmbedder

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    images = _jpegs(args.batch_size)
    dtypes = args.dtypes.split(",")
    embs = {d: ClipEmbedder(model="ViT-B-32", weights=None, device=args.device, dtype=d,
                            batch_size=args.batch_size).load() for d in dtypes}
    first = embs[dtypes[0]]
    t0 = time.perf_counter()
    pre = np.stack([first.preprocess(im) for im in images])
    t_pil = time.perf_counter() - t0
    from open_clip.transform import image_transform

    tv = image_transform(224, is_train=False)
    t0 = time.perf_counter()
    ref = np.stack([tv(im).numpy() for im in images])
    t_tv = time.perf_counter() - t0
    print(f"preprocess 640x480: PIL/numpy {len(images) / t_pil:.0f} img/s, "
          f"open_clip torchvision {len(images) / t_tv:.0f} img/s, max abs diff {np.abs(pre - ref).max():.2e}")
    seconds = {d: 0.0 for d in dtypes}
    rows = {}
    for d in dtypes:
        embs[d].embed_preprocessed(pre)  # warm-up
    # interleaved rounds, so load from other processes hits every dtype alike
    for _ in range(args.batches):
        for d in dtypes:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            rows[d] = embs[d].embed_preprocessed(pre)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[d] += time.perf_counter() - t0
    for d in dtypes:
        print(f"{d}: {args.batches * len(pre) / seconds[d]:.1f} img/s at batch {len(pre)} "
              f"({seconds[d] / args.batches:.2f} s/batch)")
    print(f"identity (same for every dtype): {first.identity}")
    names = list(rows)
    for other in names[1:]:
        cos = (rows[names[0]] * rows[other]).sum(axis=1)
        print(f"cosine {names[0]} vs {other}: min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
