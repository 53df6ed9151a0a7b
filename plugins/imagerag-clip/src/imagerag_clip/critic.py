"""A critic without a language model: CLIP similarity between the image, the prompt and its phrases.

* matches ⇔ cosine(image, prompt) ≥ ``threshold``;
* otherwise the prompt is split into phrases (:func:`imagerag_clip.phrases.split_phrases`); each
  phrase is written into ``caption_template`` and scored against the image; phrases scoring below
  ``phrase_threshold`` are the missing concepts, lowest first, and their templated text is the
  retrieval caption;
* every score is recorded as an :class:`~imagerag_sdk.types.Exchange` with stage ``clip``.

Zero cost and local, but CLIP cannot count, does not judge style or composition well, and the
thresholds only mean something for the model they were chosen for (random tiny weights give
meaningless scores).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from imagerag_sdk.errors import ComponentNotFoundError, ConfigError
from imagerag_sdk.images import to_rgb
from imagerag_sdk.roles import Critic, Embedder, Options
from imagerag_sdk.specs import EmbedderSpec
from imagerag_sdk.types import Critique, Exchange, MissingConcept

from .phrases import split_phrases


class ClipCriticOptions(Options):
    embedder: EmbedderSpec = Field(
        EmbedderSpec(use="clip"),
        description="Embedder spec, e.g. {use: clip, model: ViT-B-32, weights: openai} or {use: siglip}; "
                    "the same options as the retriever's embedder share one loaded model")
    threshold: float = Field(
        0.27, ge=-1, le=1, description="The image matches when cosine(image, prompt) is at least this "
        "(ViT-B-32/openai: matching images typically score ~0.28–0.35; other models need other values)")
    phrase_threshold: float = Field(
        0.22, ge=-1, le=1, description="A phrase is missing when cosine(image, caption of the phrase) "
                                       "is below this")
    caption_template: str = Field(
        "a photo of {concept}", description="How a phrase is scored and captioned; must contain {concept}")
    max_phrases: int = Field(8, ge=1, le=64, description="At most this many prompt phrases are scored")

    @field_validator("caption_template")
    @classmethod
    def _has_concept(cls, value: str) -> str:
        if "{concept}" not in value:
            raise ValueError("caption_template must contain {concept}")
        try:
            value.format(concept="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"caption_template is not a valid format string: {exc}") from exc
        return value


class ClipCritic(Critic[ClipCriticOptions]):
    """Judges an image by CLIP similarity to the prompt and its phrases (no VLM, no API)."""

    name = "clip"
    description = ("No-VLM critic: image–prompt CLIP similarity against a threshold; missing concepts "
                   "are prompt phrases that score low. Free and local; cannot count or judge style.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._embedder: Embedder | None = None

    @classmethod
    def from_embedder(cls, embedder: Embedder, **options: Any) -> ClipCritic:
        """A critic over an embedder instance you already hold (its ``embedder`` option is ignored)."""
        critic = cls(options)
        critic._embedder = embedder
        return critic

    @property
    def embedder(self) -> Embedder:
        self.load()
        assert self._embedder is not None
        return self._embedder

    def _load(self) -> None:
        if self._embedder is None:
            spec = self.options.embedder
            try:
                component = spec.build("embedder")
            except ComponentNotFoundError:
                from .embedder import ClipEmbedder, SiglipEmbedder

                own = {"clip": ClipEmbedder, "siglip": SiglipEmbedder}.get(spec.use)
                if own is None:
                    raise
                component = own(spec.options())
            if not isinstance(component, Embedder):
                raise ConfigError(f"critic 'clip': '{spec.use}' is not an embedder")
            self._embedder = component
        self._embedder.load()

    def scores(self, image: Image.Image, texts: list[str]) -> np.ndarray:
        """Cosine similarity of ``image`` to each text."""
        emb = self.embedder
        text_vecs = emb.embed_texts(texts)
        image_vec = emb.embed_images([to_rgb(image)])[0]
        return text_vecs @ image_vec

    def critique(self, prompt: str, image: Image.Image, *, max_concepts: int = 3,
                 user_images: Sequence[Image.Image] = ()) -> Critique:
        """Similarity of ``image`` to the prompt and its phrases; ``user_images`` are not judged
        (a note says so)."""
        self.load()
        o = self.options
        phrases = split_phrases(prompt)[: o.max_phrases]
        captions = [o.caption_template.format(concept=p) for p in phrases]
        started = time.perf_counter()
        sims = self.scores(image, [prompt, *captions])
        seconds = (time.perf_counter() - started) / max(1, len(sims))
        prompt_score = float(sims[0])
        matches = prompt_score >= o.threshold
        exchanges = [Exchange(
            stage="clip", prompt=prompt, answer=f"{prompt_score:.4f}", images=1, seconds=seconds,
            parsed={"kind": "prompt", "score": prompt_score, "threshold": o.threshold, "matches": matches})]
        phrase_scores = []
        for phrase, caption, sim in zip(phrases, captions, sims[1:], strict=True):
            score = float(sim)
            below = score < o.phrase_threshold
            phrase_scores.append((score, phrase, caption))
            exchanges.append(Exchange(
                stage="clip", prompt=caption, answer=f"{score:.4f}", images=1, seconds=seconds,
                parsed={"kind": "phrase", "concept": phrase, "score": score,
                        "threshold": o.phrase_threshold, "below": below}))
        verdict = "≥" if matches else "<"
        notes = [f"clip: prompt similarity {prompt_score:.4f} {verdict} threshold {o.threshold}"]
        if user_images:
            notes.append(f"clip: {len(user_images)} user image(s) not judged: only the generated "
                         "image is compared with the prompt")
        if matches:
            return Critique(matches=True, exchanges=tuple(exchanges), notes=tuple(notes))
        low = sorted((s for s in phrase_scores if s[0] < o.phrase_threshold), key=lambda s: s[0])
        missing = tuple(MissingConcept(concept=p, caption=c) for _, p, c in low[: max(0, max_concepts)])
        if not low:
            notes.append(f"clip: no phrase scored below phrase_threshold {o.phrase_threshold}; "
                         "no missing concept can be named")
        return Critique(matches=False, missing=missing, gave_up=not low, exchanges=tuple(exchanges),
                        notes=tuple(notes))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self._embedder is not None and self._embedder.loaded:
            info["embedder"] = self._embedder.describe()
        return info
