"""imagerag-sdk: retrieval-augmented image generation.

Generate → a critic judges the image against the prompt → missing concepts get retrieval
captions → references are found in your corpus → generate again with them.
"""

from __future__ import annotations

from .errors import ImageRAGError
from .hookspecs import hookimpl
from .plugins import build_component, get_registry
from .roles import Component, Critic, Embedder, Generator, Options, Reranker, Retriever
from .types import Critique, Exchange, GeneratorCapabilities, Hit, MissingConcept, Reference

__version__ = "0.1.0"

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
    "build_component",
    "get_registry",
    "hookimpl",
]
