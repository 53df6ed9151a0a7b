"""The ``vlm`` reranker: a vision-language critic picks the best of the top candidates.

The paper's "GPT re-rank" (Table 4): the top-N candidate images go to the critic's model in one
request, numbered, and it answers with the number of the best match (or a ranking, best first).
It works with any :class:`~imagerag_sdk.critique.VLMCritic` provider, named in the options::

    reranker: {use: vlm, top_n: 6, critic: {use: openai, model: gpt-4o-2024-08-06}}

An unusable answer (a malformed reply included) never fails the run: the visual order is kept
and the reason recorded. Every
exchange is kept in ``exchanges`` and in the first returned hit's ``metadata["vlm_rerank"]``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from PIL import Image, ImageDraw
from pydantic import Field

from . import parsing
from .critique import VLMAnswer, VLMCritic, VLMRequest, load_vlm_critic
from .errors import ImageRAGError, MalformedReplyError
from .images import fit_within, load_rgb
from .redact import mask_spec
from .roles import Options, Reranker
from .specs import CriticSpec
from .types import Exchange, Hit

BEST = ('You are given {n} candidate images, numbered 1 to {n} in the order given{marks}.\n'
        'Which image best matches this description: "{query}"?\n'
        'Answer with the number of the best image only.')
RANKING = ('You are given {n} candidate images, numbered 1 to {n} in the order given{marks}.\n'
           'Rank them by how well they match this description: "{query}".\n'
           'Answer with the image numbers only, best first, separated by commas.')
MARKS = " (each also shows its number in its top-left corner)"

BEST_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"best": {"type": "integer"}},
    "required": ["best"], "additionalProperties": False}
RANKING_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"ranking": {"type": "array", "items": {"type": "integer"}}},
    "required": ["ranking"], "additionalProperties": False}

_NUMBER_AFTER_WORD = re.compile(r"\b(?:image|picture|photo|candidate|number|option)\s*#?\s*(\d+)", re.I)
_NUMBER = re.compile(r"(?<![\d.])#?(\d+)(?![\d.]*\d)")
_REFUSAL = re.compile(r"\b(none of|no image|neither|unable to|cannot|can't|i'm sorry|i am sorry)\b", re.I)


class VLMRerankerOptions(Options):
    critic: CriticSpec = Field(
        ..., description="The vision-language critic that chooses, e.g. {use: openai, model: ...}; "
        "any critic built on imagerag_sdk.critique.VLMCritic")
    top_n: int = Field(6, ge=2, le=20, description="How many of the top candidates are shown "
                       "(the paper: CLIP top 3 + SigLIP top 3); the rest keep their order after them")
    mode: Literal["best", "ranking"] = Field(
        "best", description="best: ask for the number of the best image; ranking: ask for a full order")
    max_image_side: int = Field(384, ge=32, description="Candidates are downscaled to this side")
    label_images: bool = Field(True, description="Draw each candidate's number in its top-left corner")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (sent only to models "
                               "that take one)")
    on_provider_error: Literal["raise", "keep_order"] = Field(
        "raise", description="When the provider call itself fails: raise, or keep the visual order "
        "and record the error")


class VLMReranker(Reranker[VLMRerankerOptions]):
    """Asks a vision-language critic which candidate image best matches the query."""

    name = "vlm"
    description = ("A vision-language critic picks the best of the top-N candidate images "
                   "(the paper's GPT re-rank); any VLM critic provider.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges: deque[Exchange] = deque(maxlen=1000)
        """The latest exchanges, oldest first (bounded for long-lived processes)."""
        self._lock = threading.Lock()
        self.critic: VLMCritic[Any] | None = None

    def _load(self) -> None:
        self.critic = load_vlm_critic(self.options.critic, "rank images")

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["options"]["critic"] = mask_spec(data["options"].get("critic"))
        return data

    # -- reranking -----------------------------------------------------------------------------
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        self.load()
        hits = list(hits)
        shown: list[int] = []
        images: list[Image.Image] = []
        notes: list[str] = []
        for i, hit in enumerate(hits[: self.options.top_n]):
            try:
                img = fit_within(load_rgb(hit.path), self.options.max_image_side)
            except ImageRAGError as exc:
                notes.append(f"candidate {i + 1} not shown: {exc}")
                continue
            shown.append(i)
            images.append(_label(img, len(shown)) if self.options.label_images else img)
        record: dict[str, Any] = {"candidates": [hits[i].path for i in shown], "notes": notes,
                                  "mode": self.options.mode}
        if len(shown) < 2:
            record.update(kept_visual_order=True, reason=f"{len(shown)} candidate(s) to compare: no request")
            return self._result(hits, list(range(len(hits))), record)
        ranking, exchange = self._ask(query, images)
        record["exchange"] = exchange.to_dict()
        if ranking is None:
            record.update(kept_visual_order=True, reason=exchange.error)
            return self._result(hits, list(range(len(hits))), record)
        chosen = [shown[k - 1] for k in ranking]
        rest_shown = [i for i in shown if i not in chosen]
        tail = [i for i in range(len(hits)) if i not in shown]
        record.update(kept_visual_order=False, reason=None, best=ranking[0], ranking=ranking)
        return self._result(hits, chosen + rest_shown + tail, record)

    def _ask(self, query: str, images: list[Image.Image]) -> tuple[list[int] | None, Exchange]:
        critic = self.critic
        assert critic is not None
        n = len(images)
        marks = MARKS if self.options.label_images else ""
        ranking_mode = self.options.mode == "ranking"
        text = (RANKING if ranking_mode else BEST).format(n=n, query=query, marks=marks)
        schema = (RANKING_SCHEMA if ranking_mode else BEST_SCHEMA) if critic.structured_output else None
        temperature = self.options.temperature if critic.takes_temperature() else None
        request = VLMRequest(text=text, images=tuple(images), temperature=temperature, json_schema=schema)
        start = time.perf_counter()
        error: str | None
        try:
            answer = critic.ask(request)
        except MalformedReplyError as exc:  # an unusable answer, whatever on_provider_error says
            answer, error = VLMAnswer(text=exc.raw), f"unusable answer: {exc.message}"
            ranking = None
        except ImageRAGError as exc:
            if self.options.on_provider_error == "raise":
                raise
            answer, error = VLMAnswer(text=""), f"provider error: {exc}"
            ranking = None
        else:
            ranking = parse_choice(answer, n, ranking=ranking_mode)
            error = None if ranking is not None else f"unusable answer: no image number 1-{n} found"
        exchange = Exchange(stage="rerank", prompt=text, answer=answer.text, temperature=temperature,
                            images=n, parsed=ranking, error=error, usage=answer.usage,
                            seconds=round(time.perf_counter() - start, 4))
        with self._lock:
            self.exchanges.append(exchange)
        return ranking, exchange

    def _result(self, hits: list[Hit], order: list[int], record: dict[str, Any]) -> list[Hit]:
        out = []
        for r, i in enumerate(order):
            h = hits[i]
            meta = dict(h.metadata)
            meta.setdefault("visual_rank", i + 1)
            if r == 0:
                meta["vlm_rerank"] = record
            out.append(Hit(path=h.path, score=h.score, corpus=h.corpus, metadata=meta, query=h.query, rank=r))
        return out


def parse_choice(answer: VLMAnswer, n: int, *, ranking: bool = False) -> list[int] | None:
    """Image numbers (1-based, in range, no repeats) from an answer, best first; ``None`` when
    the answer names none. Reads structured data, JSON in text, "image 3", and bare numbers.
    In best mode only the first number counts."""
    data = answer.data if answer.data is not None else parsing.parse_json_object(answer.text or "")
    numbers = _numbers_from_data(data) if data is not None else None
    if not numbers:
        text = answer.text or ""
        if _REFUSAL.search(text):
            return None
        found = [(m.start(), m.group(1)) for m in _NUMBER_AFTER_WORD.finditer(text)]
        if not found:
            found = [(m.start(), m.group(1)) for m in _NUMBER.finditer(text)]
        numbers = [int(v) for _, v in sorted(found)]
    out: list[int] = []
    for k in numbers:
        if 1 <= k <= n and k not in out:
            out.append(k)
    if not out:
        return None
    if numbers and not 1 <= numbers[0] <= n:
        return None  # the answer led with a number that is not an image: do not guess
    return out if ranking else out[:1]


def _numbers_from_data(data: Any) -> list[int] | None:
    if isinstance(data, bool):
        return None
    if isinstance(data, int):
        return [data]
    if isinstance(data, str) and data.strip().isdigit():
        return [int(data.strip())]
    if isinstance(data, list):
        got = [_numbers_from_data(el) for el in data]
        return [k for g in got if g for k in g[:1]]
    if isinstance(data, dict):
        for key in ("ranking", "order", "best", "choice", "image", "index", "number", "answer", "result"):
            if key in data:
                return _numbers_from_data(data[key])
    return None


def _label(img: Image.Image, number: int) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    side = max(12, min(img.size) // 8)
    draw.rectangle([0, 0, side * 2, side + 4], fill=(0, 0, 0))
    try:
        from PIL import ImageFont

        font = ImageFont.load_default(size=side)
    except (TypeError, OSError):  # Pillow without sized default fonts
        font = None
    draw.text((3, 1), str(number), fill=(255, 255, 255), font=font)
    return img
