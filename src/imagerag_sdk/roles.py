"""The five roles a plugin can fill. Each is a small base class; subclass one and register it.

Construction is cheap (options are validated, nothing is loaded); ``load()`` does the heavy work
once per instance, and :func:`imagerag_sdk.plugins.build_component` caches instances per process,
so the same options share one loaded model.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from .types import Critique, GeneratorCapabilities, Hit, Reference


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors; document each field."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Component(ABC):
    """Common behaviour of every role."""

    role: ClassVar[str] = ""
    name: ClassVar[str] = ""
    """The registered name a profile uses (``use: <name>``)."""
    Options: ClassVar[type[Options]] = Options
    description: ClassVar[str] = ""

    def __init__(self, options: Options | dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        if isinstance(options, Options):
            if kwargs:
                options = options.model_copy(update=kwargs)
            self.options = self.Options.model_validate(options.model_dump())
        else:
            self.options = self.Options.model_validate({**(options or {}), **kwargs})
        self._loaded = False
        self._load_lock = threading.RLock()
        self.load_count = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self):
        """Load weights / clients once; later calls return at once. Returns ``self``."""
        if self._loaded:
            return self
        with self._load_lock:
            if not self._loaded:
                self._load()
                self.load_count += 1
                self._loaded = True
        return self

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _load(self) -> None:
        """Override: import heavy libraries and load weights here, never at import time."""

    @classmethod
    def preflight(cls, options: Options) -> list[str]:
        """Problems that would stop this component from working and that are known without
        loading anything (e.g. no API key in the options or the environment): one actionable
        line each, ``[]`` when none. Must be cheap: no heavy import, no network, no weights.

        ``options`` are already validated; a ``{$env: NAME}`` value arrives as a placeholder
        string (the variable itself is checked by the profile). Called before a pipeline is built
        and by ``imagerag profiles validate`` (there as notes). Nested component options are
        checked through their own component's preflight."""
        return []

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Name, version and options (secrets masked) for traces and ``imagerag plugins``."""
        from .plugins import component_version

        return {
            "role": self.role,
            "name": self.name or type(self).__name__,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": component_version(type(self)),
            "options": self.options.model_dump(mode="json"),
        }

    def __repr__(self) -> str:
        return f"<{self.role} {self.name or type(self).__name__}>"


class Generator(Component):
    """Text-to-image model that can also take reference images."""

    role = "generator"

    @property
    @abstractmethod
    def capabilities(self) -> GeneratorCapabilities:
        """How many references one call takes and how they condition the model."""

    @abstractmethod
    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        """Return one image for ``prompt`` conditioned on ``references`` (may be empty).

        ``prompt`` already holds the reference template when references are given to an
        in-context generator. Same seed, prompt and references → same image.
        """


class Critic(Component):
    """Judges whether an image matches its prompt and names what is missing."""

    role = "critic"

    @abstractmethod
    def critique(self, prompt: str, image: Image.Image, *, max_concepts: int = 3) -> Critique:
        """Decide whether ``image`` shows ``prompt`` (content and style); if not, name up to
        ``max_concepts`` missing concepts with a retrieval caption each. Never raises on a
        malformed model answer: it retries, then returns ``gave_up=True``."""

    def rephrase(self, prompt: str) -> tuple[str, list]:
        """Rewrite the prompt for the generator (the paper's 'rephrase only' ablation).

        Returns the new prompt and the exchanges made. Critics without a language model may
        leave this unimplemented."""
        raise NotImplementedError(f"critic '{self.name}' cannot rephrase prompts")


class Embedder(Component):
    """Maps texts and images into one space; rows are L2-normalised float32."""

    role = "embedder"

    @property
    @abstractmethod
    def identity(self) -> str:
        """Model + weights + preprocessing; an index built with another identity is refused."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit rows."""

    @abstractmethod
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32, unit rows. Images are RGB PIL images."""


class Retriever(Component):
    """Finds corpus images for text queries."""

    role = "retriever"

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top ``k`` hits per query, best first; one list per query, in query order."""

    def search_images(self, images: Sequence[Image.Image], k: int) -> list[list[Hit]]:
        """Image → image search; optional."""
        raise NotImplementedError(f"retriever '{self.name}' does not support image queries")


class Reranker(Component):
    """Reorders a query's candidate hits."""

    role = "reranker"

    @abstractmethod
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """Return the hits best first (a subset is allowed); ``score`` may be replaced."""


ROLES: dict[str, type[Component]] = {
    "generator": Generator,
    "critic": Critic,
    "embedder": Embedder,
    "retriever": Retriever,
    "reranker": Reranker,
}


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows as float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)
