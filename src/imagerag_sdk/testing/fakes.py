"""Deterministic stand-ins for every role: no model, no network, milliseconds per call.

* :class:`FakeGenerator` paints a colour from (prompt, seed) and pastes the references in (or takes
  its colour from them, or ignores them: option ``references``).
* :class:`FakeCritic` is a real :class:`~imagerag_sdk.critique.VLMCritic` whose "model" answers by
  rule: an image made without references does not match; concepts are the prompt's phrases.
* :class:`ScriptedCritic` answers from a script and records every request (temperatures included).
* :class:`FakeEmbedder` hashes words into vectors; :class:`FakeRetriever` searches a small
  synthetic corpus of captioned PNGs; :class:`FakeReranker` orders hits by word overlap.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin
from pydantic import Field

from ..atomic import replacing, write_text
from ..critique import VLMAnswer, VLMCritic, VLMCriticOptions, VLMRequest
from ..errors import AuthenticationError, ConfigError, ProviderError, ProviderTimeoutError, RateLimitError
from ..paths import cache_dir
from ..roles import Generator, Options, Reranker, Retriever
from ..types import GeneratorCapabilities, Hit, Reference
from .fake_embedder import FakeEmbedder as FakeEmbedder  # its home; named here too, as records made before it moved say
from .fake_embedder import FakeEmbedderOptions as FakeEmbedderOptions
from .fake_embedder import digest, hashed_bow, words


# -- generator ---------------------------------------------------------------------------------
class FakeGeneratorOptions(Options):
    size: int = Field(64, ge=8, le=1024, description="Output side in pixels")
    max_references: int = Field(3, ge=0, description="References one call accepts")
    conditioning: Literal["in_context", "adapter", "none"] = Field("in_context",
                                                                 description="in_context | adapter | none")
    delay: float = Field(0.0, ge=0, description="Seconds each call sleeps first (to test stopping a slow run)")
    references: Literal["paste", "colour", "ignore"] = Field(
        "paste", description="What references do: paste thumbnails in the bottom row; colour: the background "
        "takes their mean colour (an evaluation's known effect); ignore: nothing")


class FakeGenerator(Generator[FakeGeneratorOptions]):
    """Paints a deterministic image; remembers every call in ``calls``."""

    name = "fake"
    description = "Deterministic painter for tests and the 'fake' profile (no model)."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict[str, Any]] = []

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=self.options.max_references,
                                     conditioning=self.options.conditioning,
                                     uses_captions=self.options.conditioning == "in_context")

    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        self.load()
        if len(references) > self.options.max_references:
            raise ValueError(f"{len(references)} references given, at most "
                             f"{self.options.max_references} accepted")
        if self.options.delay:
            time.sleep(self.options.delay)
        self.calls.append({"prompt": prompt, "references": list(references), "seed": seed})
        s = self.options.size
        r, g, b = digest(prompt, seed)[:3]
        if references and self.options.references == "colour":
            means = [np.asarray(ref.open().convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
                     for ref in references]
            r, g, b = (int(round(c)) for c in np.mean(means, axis=0))
        img = Image.new("RGB", (s, s), (r, g, b))
        draw = ImageDraw.Draw(img)
        draw.line([(0, 0), (s - 1, s - 1)], fill=(255 - r, 255 - g, 255 - b), width=max(1, s // 16))
        for i, ref in enumerate(references if self.options.references == "paste" else ()):
            thumb = ref.open().resize((s // 3, s // 3))
            img.paste(thumb, ((i % 3) * (s // 3), s - s // 3))
        img.info["imagerag:prompt"] = prompt
        img.info["imagerag:references"] = json.dumps([ref.caption for ref in references])
        return img


# -- critics -----------------------------------------------------------------------------------
class FakeCritic(VLMCritic[VLMCriticOptions]):
    """Rule-based stand-in for a VLM, driven through the real critic protocol.

    It reads what :class:`FakeGenerator` stored in the image: an image made with references
    matches; one made without does not, and the missing concepts are the prompt's phrases."""

    name = "fake"
    provider = "fake"
    structured_output = True
    description = "Rule-based critic for tests and the 'fake' profile (no model)."

    def ask(self, request: VLMRequest) -> VLMAnswer:
        text = request.text
        first = request.history[0].text if request.history else text  # the prompt is asked first
        prompt_m = re.search(r'(?:prompt:?|rephrased:) "([^"]*)"', first)
        prompt = prompt_m.group(1) if prompt_m else ""
        sent = [img for _, _, imgs in request.messages() for img in imgs]
        image = sent[-1] if sent else None  # the generated image comes after any user image
        refs = json.loads(image.info.get("imagerag:references", "[]")) if image is not None else []
        matches = bool(refs)
        concepts = phrases(prompt)[:3]
        if request.json_schema is not None:
            missing = [] if matches else [{"concept": c, "caption": f"a photo of {c}"} for c in concepts]
            data = {"matches": matches, "missing": missing}
            return VLMAnswer(text=json.dumps(data), data=data, model="fake")
        if text.startswith("Rewrite"):
            return VLMAnswer(text=f"a detailed, faithful picture of {prompt}", model="fake")
        if "Does the image match" in text:
            return VLMAnswer(text="Yes." if matches else "No.", model="fake")
        if "Which concepts" in text:
            return VLMAnswer(text="\n".join(f"- {c}" for c in concepts), model="fake")
        if text.startswith("For each concept below"):
            listed = re.findall(r"^- (.+)$", text, re.M)
            return VLMAnswer(text="\n".join(f"{c}: a photo of {c}" for c in listed), model="fake")
        # protocol: paper (one conversation; see imagerag_sdk.paper_protocol)
        if text.startswith("Please rephrase"):
            return VLMAnswer(text=f"a detailed, faithful picture of {prompt}", model="fake")
        if re.match(r"(The first .*)?Does (this|the last) image match", text, re.S):
            return VLMAnswer(text="Yes" if matches else "No", model="fake")
        if text.startswith(("What are the differences", "Which visual concepts")):
            return VLMAnswer(text="\n".join(concepts), model="fake")
        if text.startswith("For each concept you suggested") and request.history:
            named = [ln.strip() for ln in request.history[-1].answer.splitlines() if ln.strip()]
            return VLMAnswer(text="\n".join(f"a photo of {c}" for c in named), model="fake")
        return VLMAnswer(text="I am unable to respond to that.", model="fake")


def phrases(prompt: str) -> list[str]:
    """Split a prompt into its concept phrases ("a sheep and a car" → ["sheep", "car"])."""
    parts = re.split(r",|\band\b|\bwith\b|\bof\b|\bin\b|\bon\b", prompt.lower())
    out = []
    for part in parts:
        ws = words(part)
        if ws:
            out.append(" ".join(ws))
    return out


class ScriptedCriticOptions(VLMCriticOptions):
    answers: list[Any] = Field(default_factory=list, description="Replies in order (str or JSON object)")
    structured: bool = Field(False, description="Claim native structured output")
    temperature_supported: bool = Field(True, description="Whether the fake model takes a temperature")
    fail_with: str | None = Field(None, description="Raise a ProviderError with this message on every "
                                  "request (a provider that keeps failing after its retries)")
    fail_as: Literal["provider", "timeout", "rate_limit", "auth"] = Field(
        "provider", description="Which ProviderError fail_with raises")


class ScriptedCritic(VLMCritic[ScriptedCriticOptions]):
    """Answers from ``answers`` in order (the last one repeats) and records every request."""

    name = "scripted"
    provider = "scripted"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[VLMRequest] = []
        self._lock = threading.Lock()

    @property
    def structured_output(self) -> bool:  # type: ignore[override]
        return self.options.structured

    def takes_temperature(self) -> bool:
        return self.options.temperature_supported

    @property
    def temperatures(self) -> list[float | None]:
        return [r.temperature for r in self.requests]

    def ask(self, request: VLMRequest) -> VLMAnswer:
        with self._lock:
            i = len(self.requests)
            self.requests.append(request)
        if self.options.fail_with is not None:
            error = {"provider": ProviderError, "timeout": ProviderTimeoutError,
                     "rate_limit": RateLimitError, "auth": AuthenticationError}[self.options.fail_as]
            raise error(self.options.fail_with, provider=self.provider)
        answers = self.options.answers or ["Yes"]
        reply = answers[min(i, len(answers) - 1)]
        if isinstance(reply, (dict, list)):
            return VLMAnswer(text=json.dumps(reply), data=reply, usage={"calls": 1})
        return VLMAnswer(text=str(reply), usage={"calls": 1})


# -- retriever, reranker ----------------------------------------------------------------------
FAKE_CAPTIONS = (
    "a photo of a sheep standing in a green field",
    "a red sports car parked on a street",
    "an oil painting style landscape with thick brush strokes",
    "a golden retriever dog playing with a ball",
    "a watercolor painting of a lighthouse by the sea",
    "a cat sleeping on a sofa",
    "a bowl of ramen noodles with an egg",
    "a snowy mountain peak under a blue sky",
    "a vintage bicycle leaning against a brick wall",
    "a cup of coffee with latte art",
    "a robot made of brass gears",
    "a hummingbird drinking from a flower",
)


def fake_corpus(root: str | Path, captions: Sequence[str] = FAKE_CAPTIONS) -> Path:
    """Write one captioned PNG per caption (plus a ``.txt`` sidecar) under ``root``; idempotent."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, caption in enumerate(captions):
        path = root / f"{i:03d}-{'-'.join(words(caption))[:40]}.png"
        if path.exists():
            continue
        r, g, b = digest(caption)[:3]
        img = Image.new("RGB", (48, 48), (r, g, b))
        ImageDraw.Draw(img).ellipse([8, 8, 40, 40], fill=(255 - r, g, 255 - b))
        info = PngImagePlugin.PngInfo()
        info.add_text("caption", caption)
        # the sidecar first: a PNG that exists is complete and has its caption file
        write_text(path.with_suffix(".txt"), caption + "\n")
        with replacing(path) as tmp:
            img.save(tmp, format="PNG", pnginfo=info)
    return root


class FakeRetrieverOptions(Options):
    corpus_dir: str | None = Field(None, description="Folder of the synthetic corpus (default: a cache folder)")
    corpus: str = Field("fake", description="Corpus name reported in hits")
    dim: int = Field(256, ge=8, description="Width of the hashed word vectors")
    synthetic: bool = Field(True, description="Write the built-in synthetic captioned images into the folder "
                            "first; false: search only what the folder holds")


class FakeRetriever(Retriever[FakeRetrieverOptions]):
    """Searches a small synthetic corpus by word overlap with its captions."""

    name = "fake"

    def _load(self) -> None:
        root = self.options.corpus_dir or os.path.join(
            str(cache_dir()), "fake-corpus")
        self.root = fake_corpus(root) if self.options.synthetic else Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"fake retriever: corpus_dir {self.root} does not exist",
                              hint="create it, or set synthetic: true to write the built-in corpus there")
        self.items = []
        for png in sorted(self.root.glob("*.png")):
            sidecar = png.with_suffix(".txt")
            caption = sidecar.read_text(encoding="utf-8").strip() if sidecar.exists() else png.stem
            self.items.append((str(png.resolve()), caption))
        self.matrix = hashed_bow([c for _, c in self.items], self.options.dim)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        self.load()
        if not queries:
            return []
        q = hashed_bow(list(queries), self.options.dim)
        scores = q @ self.matrix.T
        out = []
        for qi, query in enumerate(queries):
            order = np.argsort(-scores[qi], kind="stable")[:k]
            out.append([Hit(path=self.items[j][0], score=float(scores[qi, j]), corpus=self.options.corpus,
                            metadata={"caption": self.items[j][1]}, query=query, rank=r)
                        for r, j in enumerate(order)])
        return out


class FakeReranker(Reranker[Options]):
    """Orders hits by how many query words their caption shares (ties keep the input order)."""

    name = "fake"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        q = set(words(query))
        scored = [(len(q & set(words(h.caption))), -i, h) for i, h in enumerate(hits)]
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [Hit(path=h.path, score=float(s), corpus=h.corpus, metadata=h.metadata, query=h.query,
                    rank=r) for r, (s, _, h) in enumerate(scored)]
