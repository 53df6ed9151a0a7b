"""Plain value types passed between the roles. Frozen: a stage never edits another's output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # annotations only
    from PIL import Image


@dataclass(frozen=True)
class Hit:
    """One retrieved corpus item."""

    path: str
    """Absolute path of the image file."""
    score: float
    """Cosine similarity to the query (higher is closer), or a reranker's score."""
    corpus: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Caption, license, source… as stored in the corpus index."""
    query: str = ""
    """The text (or image path) this hit answers."""
    rank: int = 0

    @property
    def caption(self) -> str:
        return str(self.metadata.get("caption") or "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metadata"] = dict(self.metadata)
        return data


@dataclass(frozen=True)
class Reference:
    """An image handed to the generator, with the caption that names what it shows."""

    path: str
    caption: str = ""
    origin: Literal["retrieved", "user", "picked"] = "retrieved"
    score: float | None = None
    concept: str = ""
    corpus: str = ""

    def open(self) -> Image.Image:
        """The image as RGB with EXIF orientation applied."""
        from .images import load_rgb

        return load_rgb(self.path)

    @classmethod
    def from_hit(cls, hit: Hit, *, concept: str = "", caption: str | None = None,
                 origin: Literal["retrieved", "picked"] = "retrieved") -> Reference:
        return cls(path=hit.path, caption=caption if caption is not None else (hit.query or hit.caption),
                   origin=origin, score=hit.score, concept=concept, corpus=hit.corpus)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageQuery:
    """An image to search by (:meth:`~imagerag_sdk.roles.Retriever.search_images`), with the path
    (or label) that names it in the hits' ``query``."""

    image: Image.Image
    """RGB image."""
    path: str
    """Where the image came from (a file path), or a label for an image made in memory."""

    @classmethod
    def open(cls, path: str | Path) -> ImageQuery:
        """The image file at ``path`` as RGB (EXIF orientation applied), named by its path."""
        from .images import load_rgb

        return cls(load_rgb(str(path)), str(path))


@dataclass(frozen=True)
class MissingConcept:
    """A concept the critic found missing, and the stand-alone caption used to look it up."""

    concept: str
    caption: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Exchange:
    """One request to a vision-language model and its raw answer, as recorded in the trace."""

    stage: str
    """decide | concepts | captions | fused | rephrase | rerank | clip (score-based critics)"""
    prompt: str
    answer: str
    attempt: int = 1
    temperature: float | None = None
    alternative: str | None = None
    """What varied instead of the temperature, for models that take none."""
    seed: int | None = None
    """The sampling seed sent with the request, if any."""
    images: int = 0
    parsed: Any = None
    error: str | None = None
    usage: Mapping[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = dict(self.usage) if self.usage else None
        return data


@dataclass(frozen=True)
class Critique:
    """The critic's verdict on one image."""

    matches: bool
    missing: tuple[MissingConcept, ...] = ()
    attempts: int = 1
    """How many times the critic was asked before it gave a usable answer (or gave up)."""
    gave_up: bool = False
    """True when the image does not match but no missing concept could be named."""
    exchanges: tuple[Exchange, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "matches": self.matches,
            "missing": [m.to_dict() for m in self.missing],
            "attempts": self.attempts,
            "gave_up": self.gave_up,
            "exchanges": [e.to_dict() for e in self.exchanges],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class GeneratorCapabilities:
    """What a generator can take as references."""

    max_references: int
    """How many reference images one call accepts (OmniGen 3, IP-Adapter 1, plain text-to-image 0)."""
    conditioning: Literal["in_context", "adapter", "none"] = "in_context"
    """in_context: images are placed in the prompt; adapter: images condition through a side network."""
    uses_captions: bool = True
    """Whether the reference prompt template (captions in the text) reaches the model."""
    image_placeholder: str = "<image {i}>"
    """How image i (1-based) is written inside the prompt for in-context generators."""


@dataclass(frozen=True)
class Dropped:
    """A candidate reference that was not used, and why."""

    path: str
    reason: str
    score: float | None = None
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_path(p: str | Path) -> str:
    return str(Path(p).expanduser().resolve())


@dataclass(frozen=True)
class ScoreItem:
    """One generated image to score, with what it was generated from."""

    prompt: str
    image: Image.Image
    """The generated image (RGB)."""
    concept: str = ""
    """The concept the prompt is about (a class name in a benchmark set)."""
    real_images: tuple[str, ...] = ()
    """Absolute paths of real images of the concept (scorers with ``needs_real_images`` use them)."""


@dataclass(frozen=True)
class Score:
    """One score and what the scorer wants recorded beside it."""

    value: float
    detail: Mapping[str, Any] = field(default_factory=dict)
    """E.g. a VLM scorer's raw answer; kept in the evaluation's per-item rows."""
