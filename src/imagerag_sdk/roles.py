"""The six roles a plugin can fill. Each is a small base class; subclass one and register it.

Construction is cheap (options are validated, nothing is loaded); ``load()`` does the heavy work
once per instance, and :func:`imagerag_sdk.plugins.build_component` caches instances per process,
so the same options share one loaded model.

A component names its options model as the role's type parameter, which sets ``Options`` and
types ``self.options``: ``class MyReranker(Reranker[MyOptions])``. (``Options = MyOptions`` in
the class body, without the parameter, works too; ``self.options`` is then untyped.)

What a role may do beyond its required methods is declared on the class, never guessed:
:attr:`Retriever.supports_image_search`, :attr:`Critic.can_rephrase`,
:attr:`Embedder.supports_fast_path`. A class that leaves the flag unset declares the capability
by overriding the optional method(s) it stands for.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from .types import Critique, Exchange, GeneratorCapabilities, Hit, ImageQuery, Reference, Score, ScoreItem

if TYPE_CHECKING:  # annotations only: importing the roles (every plugin does) loads neither
    import numpy as np
    from PIL import Image


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors; document each field."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    renamed: ClassVar[dict[str, str]] = {}
    """Former option names and what replaced them: a profile that still uses one gets this told
    instead of a bare "unknown key" (``{"mode": "the critic's protocol option is now 'protocol'"}``)."""


_BaseOptions = Options  # the base model, for use inside class bodies where ``Options`` is the attribute
O = TypeVar("O", bound=Options)
"""A component's options model."""


class Component(ABC, Generic[O]):
    """Common behaviour of every role."""

    role: ClassVar[str] = ""
    name: ClassVar[str] = ""
    """The registered name a profile uses (``use: <name>``)."""
    if TYPE_CHECKING:
        Options: type[O]
        """The options model (set from the type parameter, or in the class body)."""
    else:
        Options = _BaseOptions
    description: ClassVar[str] = ""
    optional_methods: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Each optional capability flag of the role and the methods it stands for."""
    _declared: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _options_parameter(cls)
        if declared is not None:
            if "Options" not in cls.__dict__:
                # setattr: Options is type[O] for the checker, this class's O at runtime
                setattr(cls, "Options", declared)  # noqa: B010
            elif not issubclass(cls.Options, declared):
                raise TypeError(f"{cls.__qualname__}.Options ({cls.Options.__qualname__}) is not the "
                                f"options type its class declares ({declared.__qualname__})")
        # a role base sets each flag's default; any class below it that sets one declares it
        own = set() if "optional_methods" in cls.__dict__ else set(cls.optional_methods) & set(cls.__dict__)
        cls._declared = frozenset(own | {f for base in cls.__mro__[1:] for f in getattr(base, "_declared", ())})
        for flag, methods in cls.optional_methods.items():
            owner = next(k for k in reversed(cls.__mro__) if flag in k.__dict__)  # the role base
            implemented = all(getattr(cls, m) is not getattr(owner, m) for m in methods)
            if flag not in cls._declared:  # not set anywhere below the role: overriding declares it
                setattr(cls, flag, implemented)
            elif getattr(cls, flag) and not implemented:
                raise TypeError(f"{cls.__qualname__} sets {flag} = True but does not implement "
                                f"{' and '.join(methods)}")

    def __init__(self, options: O | dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        if isinstance(options, _BaseOptions):
            if kwargs:
                options = options.model_copy(update=kwargs)
            self.options: O = self.Options.model_validate(options.model_dump())
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
    def preflight(cls, options: O) -> list[str]:
        """Problems that would stop this component from working and that are known without
        loading anything (e.g. no API key in the options or the environment): one actionable
        line each, ``[]`` when none. Must be cheap: no heavy import, no network, no weights.

        ``options`` are already validated; a ``{$env: NAME}`` value arrives as a placeholder
        string (the variable itself is checked by the profile). Called before a pipeline is built
        and by ``imagerag profiles validate`` (there as notes). Nested component options are
        checked through their own component's preflight."""
        return []

    @classmethod
    def optional_capabilities(cls) -> dict[str, bool]:
        """The role's optional capability flags and whether this class has each."""
        return {flag: bool(getattr(cls, flag)) for flag in cls.optional_methods}

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


def _options_parameter(cls: type) -> type[Options] | None:
    """The options model ``cls`` names as its role's type parameter: ``Reranker[MyOptions]``, or
    the bound of a type variable (``VLMCritic(Critic[VO])``, ``VO`` bound to ``VLMCriticOptions``)
    for a base that its subclasses parameterize in turn."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Component):
            for arg in get_args(base):
                if isinstance(arg, TypeVar):
                    arg = arg.__bound__
                if isinstance(arg, type) and issubclass(arg, _BaseOptions):
                    return arg
    return None


class Generator(Component[O]):
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


class Critic(Component[O]):
    """Judges whether an image matches its prompt and names what is missing."""

    role = "critic"
    can_rephrase: ClassVar[bool] = False
    """Whether :meth:`rephrase` works (the loop's ``mode: rephrase`` needs it)."""
    optional_methods = {"can_rephrase": ("rephrase",)}

    @abstractmethod
    def critique(self, prompt: str, image: Image.Image, *, max_concepts: int = 3,
                 user_images: Sequence[Image.Image] = ()) -> Critique:
        """Decide whether ``image`` shows ``prompt`` (content and style); if not, name up to
        ``max_concepts`` missing concepts with a retrieval caption each. Never raises on a
        malformed model answer: it retries, then returns ``gave_up=True``.

        ``user_images`` are the user's own images the run was given (personalization), RGB;
        a critic may show them beside ``image`` (the VLM critics' ``protocol: paper`` does) or
        ignore them. Every critic must accept the keyword: the pipeline passes it."""

    def rephrase(self, prompt: str, *, image: Image.Image | None = None, critique: Critique | None = None,
                 user_images: Sequence[Image.Image] = ()) -> tuple[str, list[Exchange]]:
        """Optional (:attr:`can_rephrase`): rewrite the prompt for the generator (the paper's
        'rephrase only' ablation). Returns the new prompt and the exchanges made. The pipeline
        also passes the judged ``image``, its ``critique`` and the ``user_images``, for a
        critic that asks in the context of that decision (``protocol: paper``); others ignore them."""
        raise NotImplementedError(f"critic '{self.name}' cannot rephrase prompts (can_rephrase is False)")


class Embedder(Component[O]):
    """Maps texts and images into one space; rows are L2-normalised float32."""

    role = "embedder"
    supports_fast_path: ClassVar[bool] = False
    """Whether :meth:`preprocess` and :meth:`embed_preprocessed` work: the corpus indexer then
    preprocesses in worker threads while the model embeds."""
    optional_methods = {"supports_fast_path": ("preprocess", "embed_preprocessed")}
    uses_torch_threads: ClassVar[bool] = False
    """Whether the model computes with torch's intra-op CPU threads: the corpus indexer then picks
    how many its batches get (one, when that keeps up with its decode threads, else the count its
    batches measure faster; see :mod:`imagerag_sdk.index.threads`) and restores torch's setting
    afterwards. Read after :meth:`load`, so it may be a property of the loaded device (the CLIP
    plugin's is true on the CPU only)."""

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

    def preprocess(self, image: Image.Image) -> Any:
        """Optional (:attr:`supports_fast_path`): one image → the model's input (e.g. a
        ``(3, H, W)`` float32 array). Thread-safe and light: it runs in worker threads."""
        raise NotImplementedError(f"embedder '{self.name}' has no fast path (supports_fast_path is False)")

    def embed_preprocessed(self, batch: Any) -> np.ndarray:
        """Optional (:attr:`supports_fast_path`): a batch of :meth:`preprocess` outputs (stacked
        into one array when they are arrays) → ``(n, dim)`` float32 unit rows, as
        :meth:`embed_images` gives for the same images."""
        raise NotImplementedError(f"embedder '{self.name}' has no fast path (supports_fast_path is False)")


class Retriever(Component[O]):
    """Finds corpus images for text queries."""

    role = "retriever"
    supports_image_search: ClassVar[bool] = False
    """Whether :meth:`search_images` works (``imagerag search --image`` needs it)."""
    optional_methods = {"supports_image_search": ("search_images",)}

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top ``k`` hits per query, best first; one list per query, in query order."""

    def search_images(self, queries: Sequence[ImageQuery], k: int) -> list[list[Hit]]:
        """Optional (:attr:`supports_image_search`): image → image search, like :meth:`search`;
        each hit's ``query`` is its query's ``path``."""
        raise NotImplementedError(f"retriever '{self.name}' does not support image queries "
                                  "(supports_image_search is False)")


class Reranker(Component[O]):
    """Reorders a query's candidate hits."""

    role = "reranker"

    @abstractmethod
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """Return the hits best first (a subset is allowed); ``score`` may be replaced."""


class Scorer(Component[O]):
    """Scores generated images for an evaluation (``imagerag eval``); higher is better."""

    role = "scorer"
    needs_real_images: ClassVar[bool] = False
    """Whether each item must carry ``real_images`` (DINO similarity to real images of the concept):
    the harness refuses a benchmark set whose items have none."""

    @abstractmethod
    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        """One finite float per item, in order. Called with batches; loads nothing per call."""

    def score_detailed(self, batch: Sequence[ScoreItem]) -> list[Score]:
        """:meth:`score` with what should be recorded beside each value (a VLM scorer's raw
        answer). The harness calls this one; override it, and make :meth:`score` return its
        values, when there is something to record."""
        return [Score(float(v)) for v in self.score(batch)]


ROLES: dict[str, type[Component[Any]]] = {
    "generator": Generator,
    "critic": Critic,
    "embedder": Embedder,
    "retriever": Retriever,
    "reranker": Reranker,
    "scorer": Scorer,
}


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows as float32; zero rows stay zero."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)
