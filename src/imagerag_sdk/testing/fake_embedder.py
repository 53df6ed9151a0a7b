"""The fake embedder on its own: a corpus indexed with it is searched without importing the
other fakes (the critic's protocol, PIL's drawing): ``imagerag search`` imports this module only.

:class:`FakeEmbedder` hashes words into vectors (:func:`hashed_bow`); the other fakes use the same
words and digests (:mod:`imagerag_sdk.testing.fakes`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from ..roles import Embedder, Options, normalize_rows

if TYPE_CHECKING:
    from PIL import Image

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"a", "an", "the", "of", "and", "with", "in", "on", "photo", "image", "picture", "showing",
         "shows", "only", "style", "that", "this", "is", "at", "to", "for", "by"}


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).digest()


def hashed_bow(texts: Sequence[str], dim: int) -> np.ndarray:
    """Bag of words hashed into ``dim`` buckets, L2-normalised (cosine = word overlap).

    A text without a content word ("a photo of the") counts as the empty word, so every row is a
    unit vector, as the Embedder role asks."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for w in words(text) or [""]:
            h = int.from_bytes(digest(w)[:4], "little")
            out[i, h % dim] += 1.0
    return normalize_rows(out)


class FakeEmbedderOptions(Options):
    dim: int = Field(64, ge=8, description="Vector width")


class FakeEmbedder(Embedder[FakeEmbedderOptions]):
    """Texts: hashed bag of words. Images: the caption stored in a PNG text chunk, else colour."""

    name = "fake"

    @property
    def identity(self) -> str:
        return f"fake-bow/dim={self.options.dim}"

    @property
    def dim(self) -> int:
        return self.options.dim

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return hashed_bow(list(texts), self.options.dim)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = []
        for img in images:
            caption = img.info.get("caption") or img.info.get("imagerag:prompt")
            if caption:
                rows.append(hashed_bow([caption], self.options.dim)[0])
            else:
                small = np.asarray(img.convert("RGB").resize((4, 4)), dtype=np.float32).ravel()
                vec = np.zeros(self.options.dim, dtype=np.float32)
                vec[: min(self.options.dim, small.size)] = small[: self.options.dim] + 1.0
                rows.append(vec)
        return normalize_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)
