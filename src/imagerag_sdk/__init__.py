"""imagerag-sdk: retrieval-augmented image generation.

Generate → a critic judges the image against the prompt → missing concepts get retrieval
captions → references are found in your corpus → generate again with them.

The public names below are imported on first use (PEP 562), so ``import imagerag_sdk`` (and the
``imagerag`` command's start-up) loads neither numpy, PIL, pydantic nor pluggy;
``from imagerag_sdk import Generator`` works as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_names

if TYPE_CHECKING:
    from .errors import ImageRAGError
    from .hookspecs import hookimpl
    from .plugins import build_component, get_registry
    from .roles import Component, Critic, Embedder, Generator, Options, Reranker, Retriever, Scorer
    from .types import Critique, Exchange, GeneratorCapabilities, Hit, MissingConcept, Reference, Score, ScoreItem

__version__ = "0.1.0"

_LAZY = {
    "ImageRAGError": "errors",
    "hookimpl": "hookspecs",
    "build_component": "plugins",
    "get_registry": "plugins",
    **dict.fromkeys(["Component", "Critic", "Embedder", "Generator", "Options", "Reranker", "Retriever",
                     "Scorer"], "roles"),
    **dict.fromkeys(["Critique", "Exchange", "GeneratorCapabilities", "Hit", "MissingConcept", "Reference",
                     "Score", "ScoreItem"], "types"),
}
"""Each public name and the submodule that defines it."""

__all__ = [
    "Component",
    "Critic",
    "Critique",
    "Embedder",
    "Exchange",
    "Generator",
    "GeneratorCapabilities",
    "Hit",
    "ImageRAGError",
    "MissingConcept",
    "Options",
    "Reference",
    "Reranker",
    "Retriever",
    "Score",
    "ScoreItem",
    "Scorer",
    "build_component",
    "get_registry",
    "hookimpl",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
