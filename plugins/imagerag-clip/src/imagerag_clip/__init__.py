"""imagerag-clip: CLIP and SigLIP embedders on open_clip, and a CLIP critic that needs no VLM.

Registers the embedders ``clip`` and ``siglip`` and the critic ``clip``. Importing this package
is cheap: torch and open_clip are imported only when a component loads its model.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .critic import ClipCritic, ClipCriticOptions
from .embedder import ClipEmbedder, ClipEmbedderOptions, SiglipEmbedder, SiglipEmbedderOptions
from .phrases import split_phrases
from .preprocess import PreprocessSpec, preprocess_image

__all__ = [
    "ClipCritic",
    "ClipCriticOptions",
    "ClipEmbedder",
    "ClipEmbedderOptions",
    "PreprocessSpec",
    "SiglipEmbedder",
    "SiglipEmbedderOptions",
    "preprocess_image",
    "split_phrases",
]


@hookimpl
def register_embedders(register):
    register(ClipEmbedder)
    register(SiglipEmbedder)


@hookimpl
def register_critics(register):
    register(ClipCritic)


@hookimpl
def heavy_imports():
    return ["torch", "open_clip"]
