"""Session fixtures: tiny random-weight pipelines built once per test session (a few seconds)."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from imagerag_sdk.types import Reference

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]


@pytest.fixture(scope="session")
def diffusers_tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("diffusers-tiny")


@pytest.fixture(scope="session")
def diffusers_tiny_sdxl(diffusers_tiny_root):
    from imagerag_diffusers.tiny import build_tiny_sdxl

    return build_tiny_sdxl(diffusers_tiny_root)


@pytest.fixture(scope="session")
def diffusers_tiny_omnigen(diffusers_tiny_root):
    from imagerag_diffusers.tiny import build_tiny_omnigen

    return build_tiny_omnigen(diffusers_tiny_root)


@pytest.fixture(scope="session")
def diffusers_tiny_flux(diffusers_tiny_root):
    from imagerag_diffusers.tiny import build_tiny_flux

    return build_tiny_flux(diffusers_tiny_root)


@pytest.fixture(scope="session")
def diffusers_refs(tmp_path_factory):
    """Three captioned reference images of different colours and shapes."""
    folder = tmp_path_factory.mktemp("diffusers-refs")
    refs = []
    for i, colour in enumerate(COLOURS, start=1):
        path = folder / f"ref{i}.png"
        img = Image.new("RGB", (40 + 8 * i, 48), colour)
        img.paste((255, 255, 255), (4, 4, 12 + 4 * i, 16))
        img.save(path)
        refs.append(Reference(path=str(path), caption=f"a photo of shape {i}", concept=f"shape {i}"))
    return refs
