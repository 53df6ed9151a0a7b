"""Evaluation scorers ``clip`` and ``siglip``: cosine similarity of the text and the generated image.

Each scorer loads its model through the embedders' loading code (:class:`ClipEmbedder` /
:class:`SiglipEmbedder`: weights, tokenizer, PIL preprocessing), once per process: the loaded
embedder is kept in :mod:`imagerag_sdk.model_cache` under the scorer's load settings, so scorer
instances that differ only in ``text`` or ``batch_size`` share it. Scores are computed in batches
of ``batch_size`` items (each distinct text once per batch). They are separate from the
retriever's embedder: the paper retrieves with OpenAI's ViT-B/32 and evaluates with open-CLIP's.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from imagerag_sdk import model_cache
from imagerag_sdk.images import to_rgb
from imagerag_sdk.roles import Options, Scorer
from imagerag_sdk.types import ScoreItem

from . import loading
from .embedder import ClipEmbedder, ClipEmbedderOptions, SiglipEmbedder, SiglipEmbedderOptions

TEXT_FIELDS = ("prompt", "concept")
Dtype = Literal["auto", "fp32", "bf16", "fp16"]


def dtype_field() -> Any:
    """The scorers' ``dtype`` option (fp32 by default, unlike the embedders)."""
    return Field("fp32", description="Weights dtype. fp32 (default) keeps scores comparable across "
                 "machines; bf16 (a CPU with native bf16, ≈3× faster) and fp16 (CUDA) shift them "
                 "slightly; auto = fp16 on CUDA, bf16 on such a CPU, else fp32")


def batch_field() -> Any:
    """The scorers' ``batch_size`` option."""
    return Field(32, ge=1, le=4096, description="Items per forward pass")


def check_text_template(value: str) -> str:
    """A ``text`` template may name only ``{prompt}`` and ``{concept}``."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise ValueError(f"text is not a valid template: {exc}") from exc
    unknown = sorted(names - set(TEXT_FIELDS))
    if unknown:
        raise ValueError(f"text may use {{prompt}} and {{concept}}, not {', '.join(unknown)}")
    if not names:
        raise ValueError("text must contain {prompt} or {concept}")
    return value


class _TextOptions(Options):
    text: str = Field(
        "{prompt}", description="The text each image is compared with: a template over {prompt} and "
        "{concept} (the paper: the prompt, 'A photo of a <class name>')")

    _check_text = field_validator("text")(check_text_template)


class ClipScorerOptions(ClipEmbedderOptions, _TextOptions):
    weights: str | None = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag (default laion2b_s34b_b79k, open_clip's "
        "LAION-2B ViT-B-32: the paper evaluates with open-CLIP; openai, laion2b_e16, …), hf-hub:org/repo, "
        "a local checkpoint file, or a local folder with open_clip_config.json; null = seeded random weights")
    dtype: Dtype = dtype_field()
    batch_size: int = batch_field()


_SIGLIP: dict[str, Any] = dict(SiglipEmbedderOptions.model_fields)  # the embedder's fields, reused


class SiglipScorerOptions(ClipScorerOptions):
    model: str = _SIGLIP["model"]
    weights: str | None = _SIGLIP["weights"]
    tokenizer: str | None = _SIGLIP["tokenizer"]


def shared_embedder(kind: str, cls: type[ClipEmbedder], options: Options, *, exclude: set[str]) -> ClipEmbedder:
    """The loaded ``cls`` embedder for ``options`` (minus the scorer's own ``exclude`` keys), one per
    process and set of load settings (:mod:`imagerag_sdk.model_cache` under ``kind``). Its
    ``batch_size`` is the maximum: the scorer cuts the batches."""
    opts = options.model_dump(by_alias=True, exclude={"batch_size", *exclude})
    device = loading.resolve_device(opts["device"])
    opts.update(device=device, dtype=loading.resolve_dtype(opts["dtype"], device), batch_size=4096)
    key = json.dumps(opts, sort_keys=True)
    return model_cache.get_or_load(kind, key, lambda: cls(opts).load())


class ClipScorer(Scorer[ClipScorerOptions]):
    """Text–image cosine similarity with open_clip CLIP (the paper's CLIP metric)."""

    name = "clip"
    description = ("CLIP text–image cosine similarity (open_clip; default ViT-B-32, laion2b_s34b_b79k "
                   "weights as the paper's evaluation)")
    embedder_class: ClassVar[type[ClipEmbedder]] = ClipEmbedder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._embedder: ClipEmbedder | None = None

    def _load(self) -> None:
        self._embedder = shared_embedder(f"scorer:{self.name}", self.embedder_class, self.options,
                                         exclude={"text"})

    @property
    def embedder(self) -> ClipEmbedder:
        """The loaded embedder the scores come from (shared by scorers with the same load settings)."""
        self.load()
        assert self._embedder is not None
        return self._embedder

    def text_of(self, item: ScoreItem) -> str:
        """What ``item``'s image is compared with (the ``text`` template filled in)."""
        return self.options.text.format(prompt=item.prompt, concept=item.concept)

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        emb = self.embedder
        items = list(batch)
        out: list[float] = []
        step = self.options.batch_size
        for start in range(0, len(items), step):
            chunk = items[start:start + step]
            texts = [self.text_of(item) for item in chunk]
            unique = list(dict.fromkeys(texts))
            rows = dict(zip(unique, emb.embed_texts(unique), strict=True))
            images = emb.embed_images([to_rgb(item.image) for item in chunk])
            out += [float(np.dot(rows[t], v)) for t, v in zip(texts, images, strict=True)]
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self._embedder is not None:
            info["identity"] = self._embedder.identity
            info["runtime"] = {"device": self._embedder.device, "dtype": self._embedder.dtype}
        return info


class SiglipScorer(ClipScorer):
    """Text–image cosine similarity with open_clip SigLIP (the paper's SigLIP metric)."""

    name = "siglip"
    description = "SigLIP text–image cosine similarity (open_clip; default ViT-B-16-SigLIP, webli weights)"
    Options = SiglipScorerOptions
    embedder_class = SiglipEmbedder
