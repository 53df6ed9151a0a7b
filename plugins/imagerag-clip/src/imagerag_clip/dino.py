"""The ``dino`` scorer: cosine of DINO ViT features of the generated image against each real image
of its concept, averaged (the paper's DINO metric).

The model is a timm model (timm comes with open_clip): ``timm.create_model(model, pretrained=…,
num_classes=0)``, whose output is the pooled feature (the CLS token for DINO ViTs). Images are
preprocessed with PIL + numpy as timm's inference transform does (short side to
``size / crop_pct``, centre crop, normalise; :class:`~imagerag_clip.preprocess.PreprocessSpec`).
The loaded model is kept once per process (:mod:`imagerag_sdk.model_cache`), and so are the
features of each real image (by path, size and modification time): a benchmark's real images are
read and embedded once however many systems, seeds and passes are scored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from imagerag_sdk import hub, model_cache
from imagerag_sdk.errors import ConfigError, MissingDependencyError, install_hint
from imagerag_sdk.images import BadImageError, load_rgb, to_rgb
from imagerag_sdk.roles import Options, Scorer, normalize_rows
from imagerag_sdk.types import ScoreItem

from . import loading
from .preprocess import PreprocessSpec, preprocess_image
from .scorers import Dtype, batch_field, dtype_field

PRETRAINED = "pretrained"
PREPROCESS_KEYS = ("size", "mean", "std", "interpolation", "crop_pct")


class DinoScorerOptions(Options):
    model: str = Field(
        "vit_base_patch16_224.dino", min_length=1,
        description="timm model name with its pretrained tag (vit_base_patch16_224.dino, "
                    "vit_small_patch16_224.dino, vit_base_patch8_224.dino, …; timm.list_pretrained('*dino*'))")
    weights: str | None = Field(
        PRETRAINED, description="pretrained = timm's weights for the tag (from the Hugging Face hub or "
        "its cache); a local checkpoint file (.safetensors/.pth/.bin) of the architecture; null = "
        "seeded random weights (benchmarks only)")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra timm.create_model arguments: architecture overrides "
        "for a local checkpoint (img_size, patch_size, embed_dim, depth, num_heads, …)")
    preprocess: dict[str, Any] | None = Field(
        None, description="Override timm's inference preprocessing: size, mean, std, interpolation "
                          "(bicubic|bilinear), crop_pct")
    max_real_images: int | None = Field(
        None, ge=1, description="Compare with at most this many real images per item (the first ones "
                                "listed); null = all of them")
    device: str = Field("auto", description="auto (CUDA if available, else CPU), cpu, cuda, cuda:1, …")
    dtype: Dtype = dtype_field()
    batch_size: int = batch_field()
    cache_dir: str | None = Field(None, description="Download cache for pretrained weights "
                                                    "(default: the Hugging Face cache)")


class DinoModel:
    """A loaded timm feature extractor, its preprocessing and the features of the real images it
    has seen; shared by every ``dino`` scorer with the same load settings."""

    def __init__(self, model: Any, spec: PreprocessSpec, device: str, dtype: str, identity: str) -> None:
        self.model, self.spec, self.device, self.dtype, self.identity = model, spec, device, dtype, identity
        self._lock = threading.Lock()
        self._real: dict[tuple[str, int, int], np.ndarray] = {}

    def embed(self, arrays: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        """Preprocessed (3, H, W) arrays → (n, dim) float32 unit rows."""
        import torch

        out = []
        for start in range(0, len(arrays), batch_size):
            x = torch.from_numpy(np.stack(arrays[start:start + batch_size]))
            x = x.to(self.device, loading.torch_dtype(self.dtype))
            with self._lock, torch.inference_mode():
                feats = self.model(x)
            out.append(normalize_rows(feats.float().cpu().numpy()))
        return np.concatenate(out)

    def real_features(self, paths: Sequence[str], batch_size: int) -> dict[str, np.ndarray]:
        """Unit feature rows of real image files, embedded once per (path, size, mtime)."""
        keys = {}
        for path in dict.fromkeys(paths):
            try:
                st = Path(path).stat()
            except OSError as exc:
                raise BadImageError(f"scorer 'dino': cannot read real image {path}: {exc.strerror or exc}",
                                    hint="fix the benchmark set's real_images (absolute paths of image files)") from exc
            keys[path] = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            missing = [p for p, k in keys.items() if k not in self._real]
        if missing:
            arrays = []
            for path in missing:
                try:
                    arrays.append(preprocess_image(load_rgb(path), self.spec))
                except BadImageError as exc:
                    raise BadImageError(f"scorer 'dino': real image {exc.message}",
                                        hint="replace the file or drop it from the set's real_images") from exc
            rows = self.embed(arrays, batch_size)
            with self._lock:
                self._real.update((keys[p], row) for p, row in zip(missing, rows, strict=True))
        with self._lock:
            return {p: self._real[k] for p, k in keys.items()}


class DinoScorer(Scorer[DinoScorerOptions]):
    """Mean cosine of DINO features between the generated image and each real image of its concept."""

    name = "dino"
    description = ("DINO similarity to real images of the concept: cosine of timm DINO ViT features "
                   "(default vit_base_patch16_224.dino), averaged over the item's real images")
    needs_real_images = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dino: DinoModel | None = None

    def _load(self) -> None:
        o = self.options
        device = loading.resolve_device(o.device)
        dtype = loading.resolve_dtype(o.dtype, device)
        weights = _resolve_weights(o.weights)
        settings = o.model_dump(include={"model", "model_kwargs", "preprocess", "cache_dir"})
        stamp = None
        if weights not in (None, PRETRAINED):
            st = Path(weights).stat()
            stamp = [st.st_size, st.st_mtime_ns]
        key = json.dumps({**settings, "weights": weights, "stamp": stamp, "device": device, "dtype": dtype},
                         sort_keys=True)
        self._dino = model_cache.get_or_load(f"scorer:{self.name}", key,
                                             lambda: _load_dino(o, weights, device, dtype))

    @property
    def dino(self) -> DinoModel:
        """The loaded model (shared by scorers with the same load settings)."""
        self.load()
        assert self._dino is not None
        return self._dino

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        dino = self.dino
        items = list(batch)
        limit = self.options.max_real_images
        reals = []
        for i, item in enumerate(items):
            paths = item.real_images[:limit] if limit else item.real_images
            if not paths:
                what = f" ({item.concept!r})" if item.concept else ""
                raise ConfigError(f"scorer 'dino': item {i + 1}{what} has no real_images to compare with",
                                  hint="give each item of the set real images of its concept (a folder "
                                       "per class), or leave the dino scorer out")
            relative = [p for p in paths if not Path(p).is_absolute()]
            if relative:
                raise ConfigError(f"scorer 'dino': item {i + 1} names the relative real image {relative[0]!r}",
                                  hint="real_images are absolute paths (the set loader resolves them)")
            reals.append(list(paths))
        out: list[float] = []
        step = self.options.batch_size
        for start in range(0, len(items), step):
            chunk = items[start:start + step]
            generated = dino.embed([preprocess_image(to_rgb(item.image), dino.spec) for item in chunk], step)
            features = dino.real_features([p for paths in reals[start:start + step] for p in paths], step)
            for row, own in zip(generated, reals[start:start + step], strict=True):
                out.append(float(np.mean(np.stack([features[p] for p in own]) @ row)))
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self._dino is not None:
            info["identity"] = self._dino.identity
            info["runtime"] = {"device": self._dino.device, "dtype": self._dino.dtype}
        return info


def _resolve_weights(weights: str | None) -> str | None:
    """``pretrained``, an existing local file (absolute), or ``None`` (random)."""
    if weights is None or weights.strip().lower() in loading.RANDOM_WEIGHTS:
        return None
    if weights.strip() == PRETRAINED:
        return PRETRAINED
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"scorer 'dino': weights file not found: {path}",
                          hint=f"pass a local checkpoint file, '{PRETRAINED}' for timm's weights of the "
                               "model's tag, or null for random weights")
    return str(path.resolve())


def import_timm() -> Any:
    try:
        import timm  # comes with open_clip_torch
    except ImportError as exc:
        raise MissingDependencyError(f"timm is not installed ({exc})",
                                     hint=install_hint("imagerag-clip") + " — open_clip_torch brings timm") from exc
    return timm


def _load_dino(o: DinoScorerOptions, weights: str | None, device: str, dtype: str) -> DinoModel:
    timm = import_timm()
    import torch

    if not timm.is_model(o.model):
        raise ConfigError(f"scorer 'dino': unknown timm model '{o.model}'",
                          hint="see timm.list_pretrained('*dino*'), e.g. vit_base_patch16_224.dino")
    kwargs: dict[str, Any] = dict(o.model_kwargs)
    if weights not in (None, PRETRAINED):
        kwargs["pretrained_cfg_overlay"] = {"file": weights}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(o.model, pretrained=weights is not None, num_classes=0,
                                      cache_dir=o.cache_dir, **kwargs)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        if weights == PRETRAINED:
            offline = hub.offline_setting()
            hint = (f"{offline} is set and the weights are not in the local Hugging Face cache: download "
                    "them once online, or pass weights: /path/to/checkpoint.safetensors" if offline else
                    "check the model name and your network, or pass weights: /path/to/checkpoint.safetensors")
            raise ConfigError(f"scorer 'dino': cannot fetch the weights of {o.model} ({detail})", hint=hint) from exc
        raise ConfigError(f"scorer 'dino': cannot build {o.model} from {weights or 'random weights'} ({detail})",
                          hint="`model` and `model_kwargs` must name the architecture the checkpoint was "
                               "saved from") from exc
    model.eval()
    model.to(device=device, dtype=loading.torch_dtype(dtype))
    spec = _spec(timm, model, o.preprocess)
    source = weights if weights in (None, PRETRAINED) else "sha256:" + loading.file_digest(weights)
    return DinoModel(model, spec, device, dtype, f"timm:{o.model}|weights={source}|pre={spec.signature}")


def _spec(timm: Any, model: Any, override: dict[str, Any] | None) -> PreprocessSpec:
    """timm's inference preprocessing of ``model``; the size is the model's own input size (a
    ViT's patch embedding), which architecture overrides may have changed."""
    unknown = sorted(set(override or {}) - set(PREPROCESS_KEYS))
    if unknown:
        raise ConfigError(f"scorer 'dino': unknown preprocess key(s) {', '.join(unknown)}",
                          hint=f"use {', '.join(PREPROCESS_KEYS)}")
    cfg = timm.data.resolve_model_data_config(model)
    if cfg.get("crop_mode", "center") != "center" and not override:
        raise ConfigError(f"scorer 'dino': timm's crop_mode '{cfg['crop_mode']}' is not supported",
                          hint="set preprocess: {size: …, crop_pct: …} (a centre crop)")
    size = getattr(getattr(model, "patch_embed", None), "img_size", None) or cfg["input_size"][1:]
    base = {"size": tuple(size), "mean": cfg["mean"], "std": cfg["std"],
            "interpolation": cfg.get("interpolation", "bicubic"), "crop_pct": cfg.get("crop_pct", 1.0)}
    try:
        return PreprocessSpec.from_config({**base, **(override or {})})
    except ValueError as exc:
        raise ConfigError(f"scorer 'dino': bad preprocess option: {exc}") from exc
