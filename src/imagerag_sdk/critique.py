"""The chain-of-thought critic protocol, written once for every vision-language model.

A provider plugin subclasses :class:`VLMCritic` and implements only :meth:`VLMCritic.ask`
("send a conversation of text + images, get text or a JSON object back"). This module asks the
questions, parses the answers tolerantly, and retries with a rising temperature (or, for models
that take no temperature, a recorded prompt/seed variant) when an answer is unusable. The
paper's own protocol (``protocol: paper``, one multi-turn conversation) is in
:mod:`imagerag_sdk.paper_protocol`.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from PIL import Image
from pydantic import Field, model_validator

from . import parsing
from .errors import ConfigError, MalformedReplyError
from .images import fit_within, to_rgb
from .roles import Critic, Options
from .types import Critique, Exchange, MissingConcept


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: what the user sent (text and images) and what the
    model answered."""

    text: str
    images: tuple[Image.Image, ...] = ()
    answer: str = ""


@dataclass(frozen=True)
class VLMRequest:
    """What a provider sends: the conversation so far, the new question (text and images), and
    sampling settings."""

    text: str
    images: tuple[Image.Image, ...] = ()
    history: tuple[Turn, ...] = ()
    """Earlier turns, oldest first: each a user message (text + its images) and the model's
    answer. Empty for a single-turn request; ``protocol: paper`` asks its questions in one
    conversation."""
    temperature: float | None = None
    """``None`` means: do not send a temperature (the model takes none)."""
    json_schema: dict[str, Any] | None = None
    """When set, ask for a JSON object of this schema (structured output) if the provider can."""
    seed: int | None = None
    max_tokens: int = 600
    system: str | None = None

    def messages(self) -> list[tuple[Literal["user", "assistant"], str, tuple[Image.Image, ...]]]:
        """The whole conversation as ``(role, text, images)``, oldest first, ending with this
        request's question: what every provider turns into its own message shape."""
        out: list[tuple[Literal["user", "assistant"], str, tuple[Image.Image, ...]]] = []
        for turn in self.history:
            out.append(("user", turn.text, turn.images))
            out.append(("assistant", turn.answer, ()))
        out.append(("user", self.text, self.images))
        return out


@dataclass(frozen=True)
class VLMAnswer:
    text: str
    data: Any = None
    """The parsed JSON object when the provider returned structured output."""
    usage: dict[str, Any] | None = None
    model: str | None = None


FUSED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "matches": {"type": "boolean"},
        "missing": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"concept": {"type": "string"}, "caption": {"type": "string"}},
                "required": ["concept", "caption"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["matches", "missing"],
    "additionalProperties": False,
}

EXAMPLE = ('For example, if the prompt is "an oil painting of a sheep and a car" and the image shows '
           'a car but is not an oil painting, the missing concepts are:\n- oil painting style\n- a sheep')

DECIDE = ('This image was generated from the prompt: "{prompt}".\n'
          "Does the image match the prompt, in content and in style? Answer yes or no.")
CONCEPTS = ('This image was generated from the prompt: "{prompt}", but it does not match it.\n'
            "Which concepts of the prompt (objects, attributes, styles) are missing or wrong in the "
            "image? Name at most {n}, each as a short generic concept on its own line starting with "
            '"- ".\n' + EXAMPLE)
CAPTIONS = ("For each concept below, write a detailed caption of an image that shows only that "
            "concept. The captions will be used on their own to search an image database, so each "
            "must describe what such an image looks like and must not refer to any prompt or other "
            'image. Answer one line per concept, as "<concept>: <caption>".\n{concepts}')
FUSED = ('This image was generated from the prompt: "{prompt}".\n'
         "1. Decide whether the image matches the prompt, in content and in style.\n"
         "2. If it does not, name the concepts of the prompt that are missing or wrong (at most {n}, "
         "each short and generic).\n"
         "3. For each, write a detailed caption of an image showing only that concept, usable on "
         "its own to search an image database (no reference to the prompt or this image).\n"
         + EXAMPLE + "\n"
         'Answer only with JSON: {{"matches": true|false, "missing": [{{"concept": "...", '
         '"caption": "..."}}]}}')
REPHRASE = ('Rewrite this text-to-image prompt so that an image generator renders every concept in '
            'it faithfully. Keep its meaning; answer with the new prompt only.\nPrompt: "{prompt}"')
VARIANTS = ("", "\nPlease answer carefully and exactly in the format asked.",
            "\nLook at the image again and answer in the format asked.",
            "\nThink about each part of the prompt, then answer in the format asked.")


class VLMCriticOptions(Options):
    renamed = {"mode": "the critic's protocol option is now 'protocol' (auto | fused | three_step | paper)"}
    protocol: Literal["auto", "fused", "three_step", "paper"] = Field(
        "auto", description="The critic protocol. fused: one structured call; three_step: decide → "
        "concepts → captions in our wording, separate single-turn calls; paper: the paper's "
        "appendix C prompts word for word, asked as one conversation (image and earlier answers "
        "kept in context); auto: fused where the provider has structured output, else three_step")
    decision: Literal["ask", "skip"] = Field(
        "ask", description="ask: first ask whether the image matches the prompt; skip (protocol: "
        "paper only): the authors' generation mode — never decide, ask which visual concepts a "
        "model needs to draw the prompt, then their captions")
    temperature: float = Field(0.0, ge=0, description="Temperature of the first call (the paper: 0)")
    retries: int = Field(3, ge=0, le=10, description="Extra asks when an answer is unusable")
    temperature_step: float = Field(0.3, gt=0, description="Added to the temperature on each retry")
    max_temperature: float = Field(1.5, gt=0, description="Ceiling of the retry ladder")
    max_image_side: int = Field(768, ge=64, description="Images are downscaled to this side before upload")

    @model_validator(mode="after")
    def _decision_needs_paper(self) -> VLMCriticOptions:
        if self.decision == "skip" and self.protocol != "paper":
            raise ValueError("decision: skip is the paper protocol's generation mode; set protocol: paper "
                             "(or decision: ask)")
        return self


VO = TypeVar("VO", bound=VLMCriticOptions)
"""A VLM critic's options: :class:`VLMCriticOptions` or a subclass of it."""


class VLMCritic(Critic[VO]):
    """Critic over any vision-language model; subclasses implement :meth:`ask`. Name your options
    as the type parameter: ``class MyCritic(VLMCritic[MyCriticOptions])``."""

    can_rephrase = True
    provider: ClassVar[str] = "vlm"
    structured_output: ClassVar[bool] = False
    """Whether :meth:`ask` honours ``json_schema`` natively (the fused protocol becomes the default)."""

    def takes_temperature(self) -> bool:
        """Whether the configured model accepts a temperature; override per model family."""
        return True

    @abstractmethod
    def ask(self, request: VLMRequest) -> VLMAnswer:
        """Send one request; raise a :class:`~imagerag_sdk.errors.ProviderError` on failure, and
        its :class:`~imagerag_sdk.errors.MalformedReplyError` when the provider answered with
        something that is not a reply (an HTML page, JSON of another shape): the protocol counts
        that as an unusable answer and asks again."""

    async def aask(self, request: VLMRequest) -> VLMAnswer:
        """Async variant; providers with an async client override it."""
        return await asyncio.to_thread(self.ask, request)

    async def acritique(self, prompt: str, image: Image.Image, *, max_concepts: int = 3,
                        user_images: Sequence[Image.Image] = ()) -> Critique:
        return await asyncio.to_thread(self.critique, prompt, image, max_concepts=max_concepts,
                                       user_images=user_images)

    # -- protocol ------------------------------------------------------------------------------
    @property
    def effective_protocol(self) -> str:
        protocol = self.options.protocol
        if protocol == "auto":
            return "fused" if self.structured_output else "three_step"
        return protocol

    def critique(self, prompt: str, image: Image.Image, *, max_concepts: int = 3,
                 user_images: Sequence[Image.Image] = ()) -> Critique:
        self.load()
        run = _Run(self, self.fit(image))
        protocol = self.effective_protocol
        if protocol == "paper":
            from . import paper_protocol

            users = tuple(self.fit(u) for u in user_images)
            return paper_protocol.critique(run, prompt, max_concepts, users)
        if user_images:
            run.notes.append(f"{len(user_images)} user image(s) not shown to the critic: protocol "
                             f"{protocol} judges the generated image alone (protocol: paper shows them)")
        if protocol == "fused":
            return run.fused(prompt, max_concepts)
        return run.three_step(prompt, max_concepts)

    def rephrase(self, prompt: str, *, image: Image.Image | None = None, critique: Critique | None = None,
                 user_images: Sequence[Image.Image] = ()) -> tuple[str, list[Exchange]]:
        self.load()
        if self.effective_protocol == "paper":
            from . import paper_protocol

            run = _Run(self, self.fit(image) if image is not None else None)
            users = tuple(self.fit(u) for u in user_images)
            text = paper_protocol.rephrase(run, prompt, critique, users)
        else:
            run = _Run(self, None)
            text = run.ladder("rephrase", REPHRASE.format(prompt=prompt), parse=parse_rephrased)
        return (text or prompt), run.exchanges

    def fit(self, image: Image.Image) -> Image.Image:
        """``image`` as RGB, downscaled to ``max_image_side``: what is uploaded."""
        return fit_within(to_rgb(image), self.options.max_image_side)

    def ladder(self, attempt: int) -> tuple[float | None, str | None, int | None]:
        """(temperature, alternative, seed) for the 0-based attempt."""
        o = self.options
        if self.takes_temperature():
            return min(o.temperature + attempt * o.temperature_step, o.max_temperature), None, None
        if attempt == 0:
            return None, None, None
        return None, f"no temperature: prompt variant {attempt % len(VARIANTS)}, seed {attempt}", attempt


class _Run:
    """State of one critique: the image and every exchange made."""

    def __init__(self, critic: VLMCritic, image: Image.Image | None) -> None:
        self.critic = critic
        self.image = image
        self.exchanges: list[Exchange] = []
        self.notes: list[str] = []
        self.max_attempt = 1
        self.last_text = ""
        """The text of the latest well-formed answer."""
        self.last_body = ""
        """The question sent with that answer (a no-temperature retry varies the wording)."""

    @property
    def own_image(self) -> tuple[Image.Image, ...]:
        """The generated image, as a request's images (none for a text-only run)."""
        return (self.image,) if self.image is not None else ()

    def ladder(self, stage: str, text: str, *, parse: Callable[[VLMAnswer], Any],
               images: tuple[Image.Image, ...] = (), history: tuple[Turn, ...] = (),
               schema: dict | None = None) -> Any:
        """Ask (after ``history``, each attempt alone: a retry replaces the unusable answer, it
        does not follow it) until ``parse`` returns something not ``None``; ``None`` after all
        retries. :attr:`last_text` is then the latest well-formed answer."""
        critic = self.critic
        self.last_text = self.last_body = ""
        for attempt in range(critic.options.retries + 1):
            temperature, alternative, seed = critic.ladder(attempt)
            body = text + (VARIANTS[attempt % len(VARIANTS)] if alternative else "")
            req = VLMRequest(text=body, images=images, history=history, temperature=temperature,
                             json_schema=schema, seed=seed)
            start = time.perf_counter()
            error: str | None
            try:
                answer = critic.ask(req)
            except MalformedReplyError as exc:  # an unusable answer: record the raw reply, retry
                answer, value, error = VLMAnswer(text=exc.raw), None, exc.message
            else:
                self.last_text, self.last_body = answer.text, body
                try:
                    value = parse(answer)
                    error = None if value is not None else "unusable answer"
                except Exception as exc:  # a parser bug must not lose the run; record it
                    value, error = None, f"parse failed: {type(exc).__name__}: {exc}"
            self.exchanges.append(Exchange(
                stage=stage, prompt=body, answer=answer.text, attempt=attempt + 1,
                temperature=temperature, alternative=alternative, seed=req.seed,
                images=len(images) + sum(len(t.images) for t in history),
                parsed=_jsonable(value), error=error, usage=answer.usage,
                seconds=round(time.perf_counter() - start, 4)))
            self.max_attempt = max(self.max_attempt, attempt + 1)
            if value is not None:
                return value
        return None

    def result(self, matches: bool, missing: list[MissingConcept], gave_up: bool = False) -> Critique:
        return Critique(matches=matches, missing=tuple(missing), attempts=self.max_attempt,
                        gave_up=gave_up, exchanges=tuple(self.exchanges), notes=tuple(self.notes))

    def three_step(self, prompt: str, n: int) -> Critique:
        verdict = self.ladder("decide", DECIDE.format(prompt=prompt), images=self.own_image,
                              parse=lambda a: parsing.parse_yes_no(a.text))
        if verdict is None:
            self.notes.append("no yes/no answer after retries: treated as not matching")
        elif verdict:
            return self.result(True, [])
        concepts = self.ladder("concepts", CONCEPTS.format(prompt=prompt, n=n), images=self.own_image,
                               parse=lambda a: parsing.parse_list(a.text) or None)
        if not concepts:
            self.notes.append("the critic named no missing concept after retries")
            return self.result(False, [], gave_up=True)
        concepts = self._keep(concepts, n)
        captions = self._captions(concepts)
        return self.result(False, [MissingConcept(c, captions[c]) for c in concepts])

    def _captions(self, concepts: list[str], text: str | None = None,
                  history: tuple[Turn, ...] = ()) -> dict[str, str]:
        """A caption per concept, asked with ``text`` (default: ours, listing the concepts)."""
        if text is None:
            text = CAPTIONS.format(concepts="\n".join(f"- {c}" for c in concepts))

        def parse(answer: VLMAnswer) -> dict[str, str] | None:
            got = parsing.parse_captions(answer.text, concepts)
            return got if len(got) == len(concepts) else None

        captions = self.ladder("captions", text, parse=parse, history=history)
        if captions is None:
            # keep whatever the last answer did give, and fall back to the concept for the rest
            captions = parsing.parse_captions(self.last_text, concepts)
            for c in concepts:
                if c not in captions:
                    captions[c] = c
                    self.notes.append(f"no caption for '{c}': the concept itself is the query")
        return captions

    def _keep(self, items: list, n: int) -> list:
        if len(items) > n:
            dropped = [i[0] if isinstance(i, tuple) else i for i in items[n:]]
            self.notes.append(f"named {len(items)} concepts, kept the first {n}; over the budget: "
                              + ", ".join(dropped))
        return items[:n]

    def fused(self, prompt: str, n: int) -> Critique:
        def parse(answer: VLMAnswer):
            matches, pairs = parsing.parse_fused(answer.data if answer.data is not None else answer.text)
            if matches is None or (not matches and not pairs):
                return None
            return {"matches": matches, "missing": pairs}

        got = self.ladder("fused", FUSED.format(prompt=prompt, n=n), images=self.own_image, parse=parse,
                          schema=FUSED_SCHEMA)
        if got is None:
            self.notes.append("no usable structured answer after retries: treated as not matching")
            return self.result(False, [], gave_up=True)
        if got["matches"]:
            return self.result(True, [])
        missing = []
        for concept, caption in self._keep(got["missing"], n):
            if not caption:
                self.notes.append(f"no caption for '{concept}': the concept itself is the query")
            missing.append(MissingConcept(concept, caption or concept))
        return self.result(False, missing)


def parse_rephrased(answer: VLMAnswer) -> str | None:
    """The new prompt in a rephrase answer (fences and quotes stripped), ``None`` when empty."""
    return parsing.strip_fences(answer.text).strip().strip('"') or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def load_vlm_critic(spec: Any, purpose: str) -> VLMCritic[Any]:
    """Build and load the critic a component names in its options (``critic: {use: …}``) to
    ``purpose`` ("rank images", "score images"); a critic that is not a vision-language model is
    a :class:`ConfigError`."""
    critic = spec.build()
    if not isinstance(critic, VLMCritic):
        raise ConfigError(f"critic '{spec.use}' cannot {purpose}: it is not a vision-language critic "
                          "(imagerag_sdk.critique.VLMCritic)",
                          hint="use a VLM critic such as openai, gemini, anthropic or qwen")
    critic.load()
    return critic
