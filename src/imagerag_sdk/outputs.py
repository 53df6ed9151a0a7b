"""Checks on what each role returns, made where the output is received.

A plugin that returns the wrong thing (an ndarray for an image, float64 vectors, a dict for a
critique, relative paths, a hit it made up, a NaN score) fails here with a :class:`PipelineError` naming the
stage, the component and the distribution that registered it, instead of an ``AttributeError``
three stages later. The contract tests (``testing/contracts.py``) run the same functions, so a
component that passes its contract passes the loop's checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import PipelineError
from .roles import Component
from .types import Critique, Hit, Score

if TYPE_CHECKING:
    from PIL import Image

UNIT_TOLERANCE = 1e-3
"""How far a row's L2 norm may be from 1."""


def component_label(component: Component) -> str:
    """``generator 'sdxl' from imagerag-diffusers``: the role, the name and who ships it."""
    return f"{component.role} '{component.name or type(component).__name__}' from {_distribution(component)}"


def _distribution(component: Component) -> str:
    from .plugins import distribution_of

    return distribution_of(type(component)) or f"module {type(component).__module__}"


def _fail(component: Component, stage: str, message: str, hint: str | None = None) -> PipelineError:
    return PipelineError(message, stage=stage, component=component_label(component), hint=hint)


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def check_image(image: Any, generator: Component, *, stage: str = "generate") -> Image.Image:
    """A generator's output: a PIL image with at least one pixel."""
    from PIL import Image  # here: a search, which checks vectors only, imports no PIL

    if not isinstance(image, Image.Image):
        raise _fail(generator, stage, f"generate() returned {_kind(image)}, expected a PIL image",
                    hint="return a PIL.Image.Image (e.g. Image.fromarray(array))")
    if image.width < 1 or image.height < 1:
        raise _fail(generator, stage, f"generate() returned a {image.width}×{image.height} image, "
                    "expected a non-empty PIL image")
    return image


def check_vectors(rows: Any, embedder: Component, n: int, *, method: str = "embed_texts",
                  stage: str = "embed") -> np.ndarray:
    """An embedder's output for ``n`` inputs: float32, shape (n, dim), finite, unit rows."""
    hint = "return float32 L2-normalised rows (imagerag_sdk.roles.normalize_rows)"
    if not isinstance(rows, np.ndarray):
        raise _fail(embedder, stage, f"{method}() returned {_kind(rows)}, expected a numpy array", hint)
    if rows.dtype != np.float32:
        raise _fail(embedder, stage, f"{method}() returned {rows.dtype} rows, expected float32", hint)
    dim = getattr(embedder, "dim", None)
    if rows.shape != (n, dim):
        raise _fail(embedder, stage, f"{method}() returned shape {tuple(rows.shape)} for {n} inputs, "
                    f"expected ({n}, {dim}) (one row per input, the embedder's dim)")
    if not np.isfinite(rows).all():
        raise _fail(embedder, stage, f"{method}() returned NaN or infinite values", hint)
    if n:
        norms = np.linalg.norm(rows, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > UNIT_TOLERANCE)
        if bad.size:
            i = int(bad[0])
            raise _fail(embedder, stage, f"{method}() returned rows that are not unit length "
                        f"(row {i} has norm {norms[i]:.4g}; {bad.size} of {n} off)", hint)
    return rows


def check_critique(critique: Any, critic: Component, *, stage: str = "critique") -> Critique:
    """A critic's output: a :class:`~imagerag_sdk.types.Critique`."""
    if not isinstance(critique, Critique):
        raise _fail(critic, stage, f"critique() returned {_kind(critique)}, expected a Critique",
                    hint="return imagerag_sdk.Critique(matches=..., missing=(MissingConcept(...),))")
    if not isinstance(critique.matches, bool):
        raise _fail(critic, stage, f"critique() returned matches={critique.matches!r}, expected True or False")
    return critique


def check_hits(results: Any, retriever: Component, n_queries: int, *,
               stage: str = "retrieve") -> list[list[Hit]]:
    """A retriever's output for ``n_queries`` queries: one list of Hits per query, absolute paths."""
    if not isinstance(results, (list, tuple)):
        raise _fail(retriever, stage, f"search() returned {_kind(results)}, expected a list of hit lists")
    if len(results) != n_queries:
        raise _fail(retriever, stage, f"search() returned {len(results)} result lists for {n_queries} "
                    "queries, expected one list per query (in query order)")
    out = []
    for qi, hits in enumerate(results):
        if not isinstance(hits, (list, tuple)):
            raise _fail(retriever, stage, f"search() returned {_kind(hits)} for query {qi + 1}, "
                        "expected a list of Hit")
        for hit in hits:
            if not isinstance(hit, Hit):
                raise _fail(retriever, stage, f"search() returned a {_kind(hit)} among the hits of "
                            f"query {qi + 1}, expected Hit")
            if not hit.path or not Path(hit.path).is_absolute():
                raise _fail(retriever, stage, f"search() returned the relative path {hit.path!r}, "
                            "expected absolute paths", hint="resolve paths against the corpus root")
        out.append(list(hits))
    return out


def check_reranked(reranked: Any, hits: Sequence[Hit], reranker: Component, *,
                   stage: str = "rerank") -> list[Hit]:
    """A reranker's output: hits taken from its input (compared by path), each at most once."""
    if not isinstance(reranked, (list, tuple)):
        raise _fail(reranker, stage, f"rerank() returned {_kind(reranked)}, expected a list of Hit")
    given = {h.path for h in hits}
    seen: set[str] = set()
    for hit in reranked:
        if not isinstance(hit, Hit):
            raise _fail(reranker, stage, f"rerank() returned a {_kind(hit)}, expected Hit")
        if hit.path not in given:
            raise _fail(reranker, stage, f"rerank() returned {hit.path!r}, which is not among its "
                        f"{len(given)} input hits (a reranker reorders or drops, never adds)")
        if hit.path in seen:
            raise _fail(reranker, stage, f"rerank() returned {hit.path!r} twice")
        seen.add(hit.path)
    return list(reranked)


def check_scores(values: Any, scorer: Component, n: int, *, method: str = "score",
                 stage: str = "score") -> list[Score]:
    """A scorer's output for ``n`` items: a list of ``n`` finite numbers (``score``) or
    :class:`~imagerag_sdk.types.Score` objects (``score_detailed``) with JSON-able details, one per
    item in item order. Returns them as ``Score`` objects with float values."""
    hint = "return one finite float per item, in item order, as a list"
    if not isinstance(values, (list, tuple)):
        extra = " (call .tolist() on an array)" if isinstance(values, np.ndarray) else ""
        raise _fail(scorer, stage, f"{method}() returned {_kind(values)}, expected a list{extra}", hint)
    if len(values) != n:
        raise _fail(scorer, stage, f"{method}() returned {len(values)} scores for {n} items, "
                    "expected one per item (in item order)", hint)
    out: list[Score] = []
    for i, value in enumerate(values):
        score = value if isinstance(value, Score) else Score(value)
        number = score.value
        if isinstance(number, bool) or not isinstance(number, Real):
            raise _fail(scorer, stage, f"{method}() returned {_kind(number)} for item {i + 1}, "
                        "expected a float", hint)
        if not math.isfinite(float(number)):
            raise _fail(scorer, stage, f"{method}() returned {float(number)} for item {i + 1}, "
                        "expected a finite float", hint)
        if not isinstance(score.detail, Mapping):
            raise _fail(scorer, stage, f"{method}() returned a {_kind(score.detail)} detail for item "
                        f"{i + 1}, expected a mapping", hint="Score(value, detail={...})")
        try:
            json.dumps(dict(score.detail))
        except (TypeError, ValueError) as exc:
            raise _fail(scorer, stage, f"{method}() returned a detail for item {i + 1} that is not "
                        f"JSON-serialisable ({exc})",
                        hint="keep Score.detail to str, numbers, lists and dicts (it is written to rows.jsonl)") from exc
        out.append(Score(float(number), score.detail))
    return out
