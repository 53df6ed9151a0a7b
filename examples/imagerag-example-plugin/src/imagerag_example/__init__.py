"""A template plugin: one reranker that prefers hits whose caption is short and specific.

Replace the component with yours; keep heavy imports inside ``_load()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from imagerag_sdk import Hit, Options, Reranker, hookimpl


class ShortCaptionOptions(Options):
    max_words: int = Field(12, ge=1, description="Captions longer than this rank last")


class ShortCaptionReranker(Reranker):
    name = "short-caption"
    description = "Prefers hits whose caption has at most max_words words (ties keep the visual order)."
    Options = ShortCaptionOptions

    def _load(self) -> None:
        # import torch / a client here, never at module level
        pass

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        self.load()
        short = [h for h in hits if len(h.caption.split()) <= self.options.max_words]
        long = [h for h in hits if len(h.caption.split()) > self.options.max_words]
        return short + long


@hookimpl
def register_rerankers(register):
    register(ShortCaptionReranker)
