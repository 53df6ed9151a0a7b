"""CLIP and SigLIP embedders on open_clip: batched, L2-normalised float32 rows.

Images are preprocessed with PIL + numpy (:mod:`imagerag_clip.preprocess`), not with open_clip's
torchvision transform; :meth:`ClipEmbedder.preprocess` and :meth:`ClipEmbedder.embed_preprocessed`
are public so a corpus indexer can preprocess in worker threads while the model runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import ConfigDict, Field

from imagerag_sdk import hub
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.images import to_rgb
from imagerag_sdk.roles import Embedder, Options, normalize_rows

from . import loading
from .preprocess import PreprocessSpec, preprocess_image

SIGLIP_FILE_PREPROCESS = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                          "interpolation": "bicubic", "resize_mode": "squash"}
"""open_clip's SigLIP preprocessing; applied when SigLIP weights come from a bare local file."""


class ClipEmbedderOptions(Options):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    model: str = Field("ViT-B-32", min_length=1,
                       description="open_clip architecture name (ViT-B-32, ViT-L-14, …; see "
                                   "open_clip.list_models()), or the name of the model_config file")
    weights: str | None = Field(
        "openai", description="open_clip pretrained tag (openai, laion2b_s34b_b79k, …), hf-hub:org/repo, "
        "a local checkpoint file (.safetensors/.bin/.pt), or a local folder with open_clip_config.json; "
        "null = seeded random weights (benchmarks only)")
    config_file: str | None = Field(
        None, alias="model_config",
        description="Local JSON architecture config (embed_dim, vision_cfg, text_cfg) registered with "
                    "open_clip.add_model_config; its file name (without .json) must equal `model`")
    tokenizer: str | None = Field(
        None, description="null = open_clip's tokenizer for the model (CLIP: bundled, offline; SigLIP: "
        "from the hub); 'simple', a local tokenizer folder, a .model/.txt.gz file, or hf-hub:org/repo")
    preprocess: dict[str, Any] | None = Field(
        None, description="Override open_clip's preprocessing config: size, mean, std, interpolation "
                          "(bicubic|bilinear), resize_mode (shortest|squash|longest), fill_color")
    quick_gelu: bool | None = Field(
        None, description="Force QuickGELU activations (OpenAI-trained weights need them). null = what "
                          "the pretrained tag says (openai: yes), else the architecture's own setting")
    device: str = Field("auto", description="auto (CUDA if available, else CPU), cpu, cuda, cuda:1, …")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Weights dtype. auto = fp16 on CUDA, bf16 on a CPU with native bf16 "
                            "(AVX512-BF16/AMX/Arm BF16), else fp32")
    batch_size: int = Field(32, ge=1, le=4096, description="Images or texts per forward pass")
    cache_dir: str | None = Field(None, description="Download cache for tags and hub ids "
                                                    "(default: the Hugging Face cache)")


class ClipEmbedder(Embedder[ClipEmbedderOptions]):
    """CLIP text and image embeddings through open_clip (the paper: ViT-B-32, OpenAI weights)."""

    name = "clip"
    description = "CLIP text/image embeddings via open_clip (default ViT-B-32, OpenAI weights, as the paper)"
    supports_fast_path = True  # preprocess() in worker threads, embed_preprocessed() on the model
    file_preprocess: ClassVar[dict[str, Any]] = {}
    """Preprocessing defaults when the weights are a bare file (no tag or config says otherwise)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._tokenizer: Any = None
        self._spec: PreprocessSpec | None = None
        self._dim = 0
        self._identity = ""
        self.device = ""
        self.dtype = ""
        self._infer_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        o = self.options
        open_clip = loading.import_open_clip()
        import torch

        if o.model.startswith(("hf-hub:", "local-dir:")):
            raise ConfigError(f"{self.name}: model '{o.model}' names a weights source",
                              hint="put hub ids and folders in `weights` (weights: hf-hub:org/repo); "
                                   "`model` names the architecture")
        src = loading.resolve_weights(o.weights, o.model)
        cfg_part = ""
        if o.config_file:
            cfg_part = self._register_config(open_clip, o.config_file, o.model)
        elif src.kind in ("tag", "file", "random") and o.model not in open_clip.list_models():
            raise ConfigError(f"{self.name}: unknown open_clip architecture '{o.model}'",
                              hint="see open_clip.list_models(), or pass model_config: /path/<model>.json")
        if src.kind == "tag":
            loading.check_tag(o.model, src.value)
        if src.kind == "dir":  # the folder's own config defines the architecture
            cfg_part += f"+cfg:{loading.config_fingerprint(Path(src.value) / 'open_clip_config.json')}"
        create_name = src.model_name_override or o.model
        quick_gelu = o.quick_gelu
        if quick_gelu is None and src.kind == "tag":
            quick_gelu = loading.tag_wants_quick_gelu(o.model, src.value)
        if quick_gelu:
            cfg_part += "+quickgelu"
        force_pre = dict(self.file_preprocess) if src.kind in ("file", "random") else {}
        force_pre.update(o.preprocess or {})
        device = loading.resolve_device(o.device)
        dtype = loading.resolve_dtype(o.dtype, device)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = open_clip.create_model(
                    create_name, pretrained=src.value if src.kind in ("tag", "file") else None,
                    device="cpu", precision="fp32", force_preprocess_cfg=force_pre or None,
                    force_quick_gelu=bool(quick_gelu), cache_dir=o.cache_dir)
        except ConfigError:
            raise
        except Exception as exc:
            raise self._load_error(src, exc) from exc
        model.eval()
        model.to(device=device, dtype=loading.torch_dtype(dtype))
        self._model = model
        self.device, self.dtype = device, dtype
        self._spec = PreprocessSpec.from_config(open_clip.get_model_preprocess_cfg(model))
        ctx = getattr(model, "context_length", None) or getattr(getattr(model, "text", None),
                                                                "context_length", None)
        self._tokenizer = loading.make_tokenizer(o.tokenizer, create_name, ctx, component=self.name)
        self._dim = int(self._encode_images(np.zeros((1, 3, *self._spec.size), np.float32)).shape[1])
        checkpoint = _dir_checkpoint(src.value) if src.kind == "dir" else None
        weights_fp = loading.weights_fingerprint(src, checkpoint)
        self._identity = (f"open_clip:{o.model}{cfg_part}|weights={weights_fp}"
                          f"|pre={self._spec.signature}|dim={self._dim}")

    def _register_config(self, open_clip: Any, config_file: str, model: str) -> str:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"{self.name}: model_config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.name}: model_config {path} is not valid JSON: {exc}") from exc
        if not (isinstance(data, dict) and all(k in data for k in ("embed_dim", "vision_cfg", "text_cfg"))):
            raise ConfigError(f"{self.name}: model_config {path} is not an open_clip config",
                              hint="it needs embed_dim, vision_cfg and text_cfg")
        if path.stem != model:
            raise ConfigError(f"{self.name}: model '{model}' does not match model_config {path.name}",
                              hint=f"open_clip registers a config under its file name: set model: {path.stem}")
        open_clip.add_model_config(path.resolve())
        return f"+cfg:{loading.config_fingerprint(path)}"

    def _load_error(self, src: loading.WeightsSource, exc: Exception) -> ConfigError:
        first = str(exc).splitlines()[0] if str(exc) else ""
        detail = f"{type(exc).__name__}: {first[:300]}"
        if src.kind in ("tag", "hub"):
            offline = hub.offline_setting()
            hint = (f"{offline} is set and the weights are not in the local Hugging Face cache: "
                    "download them once online, or pass weights: /path/to/checkpoint.safetensors"
                    if offline else
                    "check the name and your network, or pass weights: /path/to/checkpoint.safetensors")
            return ConfigError(f"{self.name}: cannot fetch weights '{src.value}' for {self.options.model} "
                               f"({detail})", hint=hint)
        return ConfigError(f"{self.name}: cannot load weights {src.value} into {self.options.model} ({detail})",
                           hint="`model` (and model_config) must name the architecture the checkpoint "
                                "was saved from")

    # -- properties ----------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """``open_clip:<model>[+cfg:<hash>]|weights=<tag or sha256>|pre=<preprocessing>|dim=<d>``.

        The dtype and device are left out on purpose: bf16/fp16 rows are within ~1e-4 cosine of
        fp32 ones, so an index built on a CPU in bf16 stays usable from a GPU in fp16."""
        self.load()
        return self._identity

    @property
    def dim(self) -> int:
        self.load()
        return self._dim

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        self.load()
        assert self._spec is not None
        return self._spec

    @property
    def uses_torch_threads(self) -> bool:  # type: ignore[override]
        """On the CPU (known once loaded): the indexer may then run a light model on one torch
        thread. A CUDA model computes on the GPU, so its thread count is left alone."""
        return self.device == "cpu"

    # -- embedding -----------------------------------------------------------------------------
    def preprocess(self, img: Image.Image) -> np.ndarray:
        """One image → (3, H, W) float32 model input. Thread-safe, no torch: run it in workers."""
        return preprocess_image(to_rgb(img), self.preprocess_spec)

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 from :meth:`preprocess` → (N, dim) float32 unit rows."""
        self.load()
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, *self.preprocess_spec.size):
            raise ValueError(f"expected a (N, 3, {self._spec.size[0]}, {self._spec.size[1]}) batch, "  # type: ignore[union-attr]
                             f"got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self._dim), np.float32)
        step = self.options.batch_size
        return np.concatenate([self._encode_images(batch[i:i + step]) for i in range(0, len(batch), step)])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.load()
        images = list(images)
        if not images:
            return np.zeros((0, self._dim), np.float32)
        step = self.options.batch_size
        out = [self._encode_images(np.stack([self.preprocess(im) for im in images[i:i + step]]))
               for i in range(0, len(images), step)]
        return np.concatenate(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self._dim), np.float32)
        step = self.options.batch_size
        return np.concatenate([self._encode_texts(texts[i:i + step]) for i in range(0, len(texts), step)])

    def _encode_images(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, loading.torch_dtype(self.dtype))
        with self._infer_lock, torch.inference_mode():
            feats = self._model.encode_image(x)
        return normalize_rows(feats.float().cpu().numpy())

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(texts).to(self.device)
        with self._infer_lock, torch.inference_mode():
            feats = self._model.encode_text(tokens)
        return normalize_rows(feats.float().cpu().numpy())

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.loaded:
            info["identity"] = self._identity
            info["runtime"] = {"device": self.device, "dtype": self.dtype}
        return info


class SiglipEmbedderOptions(ClipEmbedderOptions):
    model: str = Field("ViT-B-16-SigLIP", min_length=1,
                       description="open_clip SigLIP architecture (ViT-B-16-SigLIP, ViT-SO400M-14-SigLIP, …) "
                                   "or the name of the model_config file")
    weights: str | None = Field(
        "webli", description="open_clip pretrained tag (webli), hf-hub:org/repo, a local checkpoint "
        "file, or a local folder with open_clip_config.json; null = seeded random weights")
    tokenizer: str | None = Field(
        None, description="null = the model's tokenizer from the Hugging Face hub (needs the network "
        "or the HF cache); offline, a local tokenizer folder or SentencePiece .model file")


class SiglipEmbedder(ClipEmbedder):
    """SigLIP text and image embeddings through open_clip (the paper's second retriever)."""

    name = "siglip"
    description = "SigLIP text/image embeddings via open_clip (default ViT-B-16-SigLIP, webli weights)"
    Options = SiglipEmbedderOptions
    file_preprocess = SIGLIP_FILE_PREPROCESS


def _dir_checkpoint(folder: str) -> str | None:
    """The checkpoint file open_clip loads from a local folder (None if this open_clip version
    has no such helper; the identity then fingerprints the folder instead)."""
    try:
        from open_clip.factory import _find_checkpoint_in_dir
    except ImportError:  # a private helper: other open_clip versions may not have it
        return None
    return _find_checkpoint_in_dir(Path(folder))
