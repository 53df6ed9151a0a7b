"""CLIP image preprocessing with PIL and numpy only (no torch, no torchvision).

It reproduces open_clip's inference transform (``open_clip.image_transform(..., is_train=False)``)
step by step: resize (``shortest``: shortest side to the target, then centre crop; ``squash``: both
sides to the target; ``longest``: longest side to the target, then centre pad), RGB, scale to
[0, 1], normalise with the model's mean and std, CHW float32; ``crop_pct`` < 1 gives timm's
inference transform instead (short side to ``size / crop_pct``, centre crop). PIL does the
resampling in both, so the results agree to float rounding; this path is several times faster
than the torchvision one on CPU and runs in any thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "random": Image.Resampling.BICUBIC}  # open_clip: 'random' means bicubic at inference


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes model input. ``size`` is (height, width)."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    crop_pct: float = 1.0
    """timm's centre-crop share (``shortest``, square sizes): the short side is first resized to
    ``floor(size / crop_pct)``, then the centre ``size`` is cropped (DINO: 0.9)."""

    def __post_init__(self) -> None:
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        if self.resize_mode not in ("shortest", "squash", "longest"):
            raise ValueError(f"resize_mode must be shortest, squash or longest, got {self.resize_mode!r}")
        cropped = self.crop_pct != 1
        if not 0 < self.crop_pct <= 1 or (cropped and (self.resize_mode != "shortest" or
                                                       self.size[0] != self.size[1])):
            raise ValueError(f"crop_pct must be in (0, 1] (below 1 only with resize_mode shortest and "
                             f"a square size), got {self.crop_pct!r} with {self.resize_mode} {self.size}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreprocessSpec:
        """From an open_clip preprocess config (``open_clip.get_model_preprocess_cfg(model)``)."""
        size = cfg.get("size", 224)
        size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
        mean = cfg.get("mean") or cls.mean
        std = cfg.get("std") or cls.std
        mean = (float(mean),) * 3 if isinstance(mean, (int, float)) else tuple(float(v) for v in mean)
        std = (float(std),) * 3 if isinstance(std, (int, float)) else tuple(float(v) for v in std)
        return cls(size=size, mean=mean, std=std,
                   interpolation=str(cfg.get("interpolation") or "bicubic"),
                   resize_mode=str(cfg.get("resize_mode") or "shortest"),
                   fill_color=int(cfg.get("fill_color") or 0),
                   crop_pct=float(cfg.get("crop_pct") or 1.0))

    @property
    def signature(self) -> str:
        """Stable text naming everything that changes the pixels the model sees."""
        h, w = self.size
        mean = ",".join(f"{v:.4f}" for v in self.mean)
        std = ",".join(f"{v:.4f}" for v in self.std)
        fill = f",fill={self.fill_color}" if self.resize_mode == "longest" else ""
        crop = f",crop={self.crop_pct:.4f}" if self.crop_pct != 1 else ""
        return f"{h}x{w},{self.resize_mode},{self.interpolation},mean=({mean}),std=({std}){fill}{crop}"

    def __call__(self, img: Image.Image) -> np.ndarray:
        return preprocess_image(img, self)


def _resized(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    resample = _RESAMPLE[spec.interpolation]
    th, tw = (math.floor(v / spec.crop_pct) for v in spec.size) if spec.crop_pct != 1 else spec.size
    w, h = img.size
    if spec.resize_mode == "squash":
        return img.resize((tw, th), resample)
    if spec.resize_mode == "shortest" and th == tw:
        # torchvision Resize(int): the short side becomes `th`, the long side is truncated
        if w <= h:
            new_w, new_h = th, int(th * h / w)
        else:
            new_w, new_h = int(th * w / h), th
    else:
        # open_clip ResizeKeepRatio: ratio from the shortest (or longest) side, sizes rounded
        ratio_h, ratio_w = h / th, w / tw
        ratio = max(ratio_h, ratio_w) if spec.resize_mode == "longest" else min(ratio_h, ratio_w)
        new_h, new_w = round(h / ratio), round(w / ratio)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((max(1, new_w), max(1, new_h)), resample)


def _center_crop_or_pad(img: Image.Image, size: tuple[int, int], fill: int) -> Image.Image:
    th, tw = size
    w, h = img.size
    if tw > w or th > h:
        canvas = Image.new("RGB", (max(w, tw), max(h, th)), (fill, fill, fill))
        canvas.paste(img, ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0))
        img = canvas
        w, h = img.size
        if (w, h) == (tw, th):
            return img
    top = int(round((h - th) / 2.0))
    left = int(round((w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


def preprocess_image(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One PIL image → (3, H, W) float32, normalised as the model expects."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    img = _resized(img, spec)
    if spec.resize_mode != "squash":
        img = _center_crop_or_pad(img, spec.size, spec.fill_color)
    pixels = np.asarray(img)
    out = np.empty((3, *pixels.shape[:2]), np.float32)
    for c, (mean, std) in enumerate(zip(spec.mean, spec.std, strict=True)):
        # channel-first as it goes: the same float32 products and differences as (x·scale − shift)
        np.multiply(pixels[:, :, c], np.float32(1.0 / (255.0 * std)), out=out[c], casting="unsafe")
        out[c] -= np.float32(mean / std)
    return out
