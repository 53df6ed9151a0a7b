"""imagerag-clip: CLIP and SigLIP embedders on open_clip, a CLIP critic that needs no VLM, and
the evaluation scorers.

Registers the embedders ``clip`` and ``siglip``, the critic ``clip`` and the scorers ``clip``,
``siglip`` (text–image cosine) and ``dino`` (DINO similarity to real images, on timm). Importing
this package is cheap: torch, open_clip and timm are imported only when a component loads its model.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .critic import ClipCritic, ClipCriticOptions
from .dino import DinoScorer, DinoScorerOptions
from .embedder import ClipEmbedder, ClipEmbedderOptions, SiglipEmbedder, SiglipEmbedderOptions
from .phrases import split_phrases
from .preprocess import PreprocessSpec, preprocess_image
from .scorers import ClipScorer, ClipScorerOptions, SiglipScorer, SiglipScorerOptions

__all__ = [
    "ClipCritic",
    "ClipCriticOptions",
    "ClipEmbedder",
    "ClipEmbedderOptions",
    "ClipScorer",
    "ClipScorerOptions",
    "DinoScorer",
    "DinoScorerOptions",
    "PreprocessSpec",
    "SiglipEmbedder",
    "SiglipEmbedderOptions",
    "SiglipScorer",
    "SiglipScorerOptions",
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
def register_scorers(register):
    register(ClipScorer)
    register(SiglipScorer)
    register(DinoScorer)


@hookimpl
def heavy_imports():
    return ["torch", "open_clip", "timm"]
