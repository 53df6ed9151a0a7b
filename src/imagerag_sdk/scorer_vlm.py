"""The ``vlm`` scorer: a vision-language model rates how well each image shows its concept.

A GPTScore-style metric for ``imagerag eval``: any :class:`~imagerag_sdk.critique.VLMCritic`
provider (openai, gemini, anthropic, qwen, your own) is asked one question per image and answers
with a number, read as a score from 0 to 1::

    scorer: {use: vlm, critic: {use: openai, model: gpt-4o-2024-08-06}}

**The question** (:data:`QUESTION`, ``{subject}`` the item's concept, or its prompt with
``subject: prompt`` or when the item has no concept)::

    How well does this image show "{subject}"?
    Rate it with one whole number from 0 to 100: 0 means it does not show it at all, 100 means
    it shows it clearly and correctly. Answer with the number only.

Why this wording: the paper reports a GPTScore (Table 1) but does not quote the prompt it used,
so the question is ours. It asks about the concept because Table 1 measures whether the rare
concept is drawn; it asks for a number on 0–100, not yes/no, so that one image gives a graded
score (a yes/no per image makes every item 0 or 1); "the number only" keeps the answer easy to
read, and providers with structured output also get a JSON schema ``{"score": integer}``.
``question:`` replaces it (it must contain ``{subject}``) to reproduce another protocol.

**Reading the answer** (:func:`parse_score`): ``87`` → 0.87; ``87/100``, ``8/10``, ``4 out of
5``, ``87%`` → that fraction; a number with a decimal point up to 1 (``Score: 0.9``) → itself;
``{"score": 87}`` as for text. An echo of the scale ("on a scale from 0 to 100, …") is skipped
and a number after "score"/"rating" is preferred. With no number, an answer that *starts* with a
bare yes or no ("Yes.", "No, it shows a gull") scores 1.0 or 0.0 (``parsed_as: "yes/no"`` in the
detail): the model judged, only coarsely. Anything else (a refusal, "No image was provided",
"120") is unusable.

**Retries.** An unusable answer is asked again through the critic's own retry ladder (its
``retries``, rising temperature or, for models that take none, a varied prompt and seed: the
critic's options). When every attempt is unusable, :meth:`VLMScorer.score_detailed` raises a
:class:`~imagerag_sdk.errors.MalformedReplyError` naming the item; a provider failure (a 503
after the client's own retries) raises a :class:`~imagerag_sdk.errors.ProviderError` naming the
item. Either way the harness records that item as failed.

**Batches.** One request per image. Critics with an async path of their own (they override
``aask``: the API critics) answer over the network, so up to ``concurrency`` images are asked at
once (each through the same synchronous ladder, in a worker thread); the others (a local model
such as qwen) are asked one image at a time.

``Score.detail`` holds the raw answer, how it was read (``parsed_as``), the number of attempts,
the temperature (or the ladder's alternative) of the answer used, the subject and the question,
and the earlier answers when there were retries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field, field_validator

from . import parsing
from .critique import VLMAnswer, VLMCritic, _Run, load_vlm_critic
from .errors import MalformedReplyError, ProviderError
from .images import fit_within, to_rgb
from .redact import mask_spec
from .roles import Options, Scorer
from .specs import CriticSpec
from .types import Score, ScoreItem

QUESTION = ('How well does this image show "{subject}"?\n'
            "Rate it with one whole number from 0 to 100: 0 means it does not show it at all, "
            "100 means it shows it clearly and correctly. Answer with the number only.")
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"score": {"type": "integer"}},
                          "required": ["score"], "additionalProperties": False}

_NUM = r"(-?\d+(?:\.\d+)?)"
_FRACTION = re.compile(_NUM + r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?(\s*%)?", re.I)
_SCALE_ECHO = re.compile(r"\b(?:from|between)?\s*0\s*(?:-|–|to|and)\s*(?:1|5|10|100)\b(?!\s*(?:/|out))", re.I)
_LABELLED = re.compile(r"\b(?:score|rating|rate(?:d)?|grade|give\s+it)\b\W{0,12}(?:is\s+|of\s+|:?\s*)?(?=-?\d)", re.I)
_LEADING = re.compile(r"^\W*(yes|yeah|yep|no|nope)\s*(?:$|[.,!;:—–-])", re.I)
_KEYS = ("score", "rating", "value", "answer", "result")


def parse_score(answer: VLMAnswer, subject: str = "") -> tuple[float, str] | None:
    """``(score from 0 to 1, how it was read: "number" | "yes/no")`` from an answer, or ``None``
    when it holds no usable score (see the module docstring for the rule). Where the answer
    repeats ``subject`` (the concept asked about: "Boeing 737-200"), its numbers are not read."""
    text = answer.text or ""
    data = answer.data if answer.data is not None else parsing.parse_json_object(text)
    if data is not None and not isinstance(data, str):
        got = _from_data(data, subject)
        if got is not None:
            return got
    return _from_text(data if isinstance(data, str) else text, subject)


def _from_data(data: Any, subject: str) -> tuple[float, str] | None:
    if isinstance(data, bool):
        return None
    if isinstance(data, (int, float)):
        value = _scaled(float(data), None, False, isinstance(data, float))
        return (value, "number") if value is not None else None
    if isinstance(data, str):
        return _from_text(data, subject)
    if isinstance(data, dict):
        for key in _KEYS:
            if key in data:
                return _from_data(data[key], subject)
    return None


def _from_text(text: str, subject: str) -> tuple[float, str] | None:
    clean = re.sub(r"[*_`#\"]", " ", parsing.strip_fences(text)).strip()
    body = re.sub(re.escape(subject), " ", clean, flags=re.I) if subject.strip() else clean
    body = _SCALE_ECHO.sub(" ", body)
    labelled = _LABELLED.search(body)
    match = _FRACTION.match(body, labelled.end()) if labelled else _FRACTION.search(body)
    if match is not None:
        number, denominator, percent = match.groups()
        value = _scaled(float(number), float(denominator) if denominator else None, bool(percent),
                        "." in number)
        return (value, "number") if value is not None else None
    leading = _LEADING.match(clean)
    if leading:
        return (1.0 if leading.group(1).lower().startswith("y") else 0.0), "yes/no"
    return None


def _scaled(value: float, denominator: float | None, percent: bool, decimal: bool) -> float | None:
    if value < 0:
        return None
    if denominator is not None:
        return value / denominator if 0 < denominator and value <= denominator else None
    if percent or not (decimal and value <= 1):
        return value / 100 if value <= 100 else None
    return value


class VLMScorerOptions(Options):
    critic: CriticSpec = Field(
        ..., description="The vision-language critic that rates, e.g. {use: openai, model: ...}; any "
        "critic built on imagerag_sdk.critique.VLMCritic (its retries and temperature apply)")
    subject: Literal["concept", "prompt"] = Field(
        "concept", description="What the question asks about: the item's concept (the prompt when "
        "an item has none), or its whole prompt")
    question: str = Field(QUESTION, description="The question sent with each image; {subject} is "
                          "replaced by the concept or prompt")
    concurrency: int = Field(4, ge=1, le=64, description="Images asked at once, for critics with an "
                             "async (network) path; other critics are asked one image at a time")

    @field_validator("question")
    @classmethod
    def _has_subject(cls, value: str) -> str:
        if "{subject}" not in value:
            raise ValueError("the question must contain {subject} (the concept or prompt asked about)")
        try:
            value.format(subject="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"the question is not a valid template ({exc}); write literal braces "
                             "as {{ and }}") from None
        return value


class VLMScorer(Scorer[VLMScorerOptions]):
    """Asks a vision-language critic how well each image shows its concept (0–1)."""

    name = "vlm"
    description = ("A vision-language critic rates from 0 to 100 how well each image shows its "
                   "concept (GPTScore-style), read as 0-1; any VLM critic provider.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.critic: VLMCritic[Any] | None = None

    def _load(self) -> None:
        self.critic = load_vlm_critic(self.options.critic, "score images")

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["options"]["critic"] = mask_spec(data["options"].get("critic"))
        return data

    @property
    def concurrent(self) -> bool:
        """Whether images are asked at once: the critic has an async path of its own."""
        self.load()
        assert self.critic is not None  # set by _load
        return type(self.critic).aask is not VLMCritic.aask and self.options.concurrency > 1

    def subject_of(self, item: ScoreItem) -> str:
        return item.prompt if self.options.subject == "prompt" or not item.concept else item.concept

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        return [s.value for s in self.score_detailed(batch)]

    def score_detailed(self, batch: Sequence[ScoreItem]) -> list[Score]:
        self.load()
        items = list(batch)
        if not self.concurrent or len(items) < 2:
            return [self._score_one(item, i, len(items)) for i, item in enumerate(items)]
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(items)),
                                thread_name_prefix="imagerag-vlm-score") as pool:
            futures = [pool.submit(self._score_one, item, i, len(items)) for i, item in enumerate(items)]
            return _in_order(futures)

    def _score_one(self, item: ScoreItem, index: int, total: int) -> Score:
        critic = self.critic
        assert critic is not None  # set by _load
        subject = self.subject_of(item)
        question = self.options.question.format(subject=subject)
        run = _Run(critic, fit_within(to_rgb(item.image), critic.options.max_image_side))
        label = f"item {index + 1} of {total} ({self.options.subject if item.concept else 'prompt'} {subject!r})"
        try:
            got = run.ladder("score", question, images=run.own_image, parse=lambda a: parse_score(a, subject),
                             schema=SCHEMA if critic.structured_output else None)
        except MalformedReplyError:
            raise  # the ladder counts these as unusable answers; one escaping is the critic's own
        except ProviderError as exc:
            raise ProviderError(f"scoring {label} failed: {_without_provider(exc)}", provider=exc.provider,
                                hint=exc.hint) from exc
        exchanges = run.exchanges
        last = exchanges[-1]
        if got is None:
            raise MalformedReplyError(
                f"no usable score in {len(exchanges)} answer(s) for {label}; last answer: "
                f"{_short(last.answer)!r} ({last.error})", provider=critic.provider, raw=last.answer,
                hint=f"the critic's 'retries' option sets how often it asks again (now "
                     f"{critic.options.retries}); check that the model sees images and answers with a number")
        value, parsed_as = got
        detail: dict[str, Any] = {"answer": last.answer, "parsed_as": parsed_as, "attempts": len(exchanges),
                                  "temperature": last.temperature, "subject": subject, "question": question}
        if last.alternative:
            detail["alternative"] = last.alternative
        if len(exchanges) > 1:
            detail["earlier"] = [{"answer": e.answer, "error": e.error, "temperature": e.temperature,
                                  "alternative": e.alternative} for e in exchanges[:-1]]
        if last.usage:
            detail["usage"] = dict(last.usage)
        return Score(value, detail)


def _in_order(futures: list[Future[Score]]) -> list[Score]:
    """The futures' results in order; on the first that failed (or on Ctrl-C), the ones not yet
    started are cancelled and the error raised."""
    out = []
    for i, future in enumerate(futures):
        try:
            out.append(future.result())
        except BaseException:
            for rest in futures[i + 1:]:
                rest.cancel()
            raise
    return out


def _without_provider(exc: ProviderError) -> str:
    prefix = f"{exc.provider}: "
    return exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message


def _short(text: str, limit: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
