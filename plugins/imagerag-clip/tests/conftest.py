"""Fixtures of the imagerag-clip tests (all prefixed ``clip_``): a tiny random CLIP built once."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def clip_tiny(tmp_path_factory) -> dict[str, str]:
    """Options of a tiny random CLIP (seed 0), loaded through the real open_clip path."""
    from imagerag_clip.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip_tiny"))


@pytest.fixture(scope="session")
def clip_tiny_seed1(clip_tiny) -> dict[str, str]:
    """Same architecture, other weights (seed 1), in the same folder."""
    from pathlib import Path

    from imagerag_clip.tiny import build_tiny_clip

    return build_tiny_clip(Path(clip_tiny["weights"]).parent, seed=1)


@pytest.fixture
def clip_images():
    """A few small RGB images of different sizes and colours."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (24 + 9 * i, 40 + 5 * i, 3), dtype=np.uint8))
            for i in range(5)]
