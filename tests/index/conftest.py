"""Fixtures for the corpus-index tests (all prefixed ``index_``).

``index_embedder_factory`` is the one place that chooses the embedder: the core's FakeEmbedder
(fast, deterministic) wrapped to count the images it embeds. A real model (the CLIP plugin's tiny
open_clip build) can be plugged in here later without touching the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from imagerag_sdk.testing.fakes import FakeEmbedder


class CountingEmbedder(FakeEmbedder):
    """FakeEmbedder that records how many images went through the model, and in which batches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    @property
    def embedded(self) -> int:
        return sum(self.batches)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.batches.append(len(images))
        return super().embed_images(images)


class FastPathEmbedder(CountingEmbedder):
    """Offers the optional ``preprocess`` / ``embed_preprocessed`` pair and records the threads
    preprocessing ran on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.preprocess_threads: set[str] = set()
        self._lock = threading.Lock()

    def preprocess(self, img: Image.Image) -> np.ndarray:
        with self._lock:
            self.preprocess_threads.add(threading.current_thread().name)
        return FakeEmbedder.embed_images(self, [img])[0]

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        assert isinstance(batch, np.ndarray) and batch.ndim == 2
        self.batches.append(len(batch))
        return batch


@pytest.fixture
def index_embedder_factory():
    """``make(fast=False, dim=64)`` → a fresh counting embedder."""

    def make(fast: bool = False, dim: int = 64):
        return (FastPathEmbedder if fast else CountingEmbedder)(dim=dim)

    return make


def write_captioned(path: Path, caption: str, size: tuple[int, int] = (24, 24)) -> Path:
    """A PNG whose FakeEmbedder vector is the caption's bag of words (caption in a text chunk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("caption", caption)
    seed = sum(map(ord, caption))
    Image.new("RGB", size, (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(path, pnginfo=info)
    return path


CAPTION_WORDS = ["apple", "boat", "cloud", "desert", "engine", "forest", "guitar", "harbor", "island",
                 "jungle", "kettle", "lantern", "meadow", "needle", "orchard", "piano", "quarry",
                 "river", "saddle", "tunnel", "umbrella", "violin", "walrus", "yacht", "zebra"]


def caption_for(i: int) -> str:
    n = len(CAPTION_WORDS)
    return f"{CAPTION_WORDS[i % n]} {CAPTION_WORDS[(i * 7 + 3) % n]} item{i} tag{i}"


@pytest.fixture
def index_make_images():
    """``make(root, count, start=0, subdirs=True)`` → captioned PNGs; returns {relpath: caption}."""

    def make(root: Path, count: int, start: int = 0, subdirs: bool = True) -> dict[str, str]:
        out = {}
        for i in range(start, start + count):
            rel = f"{f'sub{i % 3}/' if subdirs else ''}img{i:04d}.png"
            out[rel] = caption_for(i)
            write_captioned(root / rel, caption_for(i))
        return out

    return make


@pytest.fixture
def index_write_captioned():
    return write_captioned
