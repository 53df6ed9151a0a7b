"""Size limits on what a critic says (the ``loop.limits`` section of a profile).

A critic is a model: it can answer with a megabyte. :meth:`Limits.apply` cuts a
:class:`~imagerag_sdk.types.Critique` to the configured sizes before the loop uses it, so retrieval
searches by the cut caption, and returns a :class:`Cut` per text it shortened (the run records each,
with the full text kept in a side file of the run folder).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .types import Critique, Exchange, MissingConcept


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: int = Field(8000, ge=100, description="Characters kept of each raw critic answer recorded "
                        "in an exchange (and of each text in its parsed value)")
    concept: int = Field(200, ge=10, description="Characters kept of each missing-concept name")
    caption: int = Field(1000, ge=20, description="Characters kept of each retrieval caption")

    def apply(self, critique: Critique) -> tuple[Critique, list[Cut]]:
        """``critique`` with every text cut to its limit, and what was cut (empty: nothing)."""
        cuts: list[Cut] = []
        missing = []
        for m in critique.missing:
            concept = _cut(m.concept, self.concept, "concept", m.concept, cuts)
            caption = _cut(m.caption, self.caption, "caption", m.concept, cuts)
            missing.append(MissingConcept(concept, caption) if (concept, caption) != (m.concept, m.caption)
                           else m)
        exchanges = self.apply_exchanges(critique.exchanges, cuts)
        if not cuts:
            return critique, cuts
        return replace(critique, missing=tuple(missing), exchanges=tuple(exchanges)), cuts

    def apply_exchanges(self, exchanges: tuple[Exchange, ...] | list[Exchange],
                        cuts: list[Cut]) -> list[Exchange]:
        """Exchanges with their answers (and the texts in their parsed values) cut; cuts appended."""
        out = []
        for x in exchanges:
            where = f"{x.stage} #{x.attempt}"
            answer = _cut(x.answer, self.answer, "answer", where, cuts)
            parsed = _cut_strings(x.parsed, self.answer)
            out.append(replace(x, answer=answer, parsed=parsed) if answer is not x.answer or parsed is not x.parsed
                       else x)
        return out


@dataclass(frozen=True)
class Cut:
    """One text shortened to its limit."""

    what: str
    """answer | concept | caption"""
    where: str
    """The concept it belongs to, or the exchange (``<stage> #<attempt>``) for an answer."""
    text: str
    """The full text as the critic gave it."""
    kept: int
    """Characters kept."""


def _cut(text: str, limit: int, what: str, where: str, cuts: list[Cut]) -> str:
    if len(text) <= limit:
        return text
    cuts.append(Cut(what, where, text, limit))
    return text[:limit]


def _cut_strings(value: Any, limit: int) -> Any:
    """``value`` with every string longer than ``limit`` cut; the same object when nothing is."""
    if isinstance(value, str):
        return value[:limit] if len(value) > limit else value
    if isinstance(value, (list, tuple)):
        items = [_cut_strings(v, limit) for v in value]
        return type(value)(items) if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        got = {k: _cut_strings(v, limit) for k, v in value.items()}
        return got if any(got[k] is not value[k] for k in value) else value
    return value
