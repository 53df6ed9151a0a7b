"""A template generator: a prompt-seeded pattern tinted by the mean colours of its references.

Cheap and deterministic, but it genuinely uses what the pipeline hands it: replace ``_paint`` and
``_tint`` with your model and keep the rest (capabilities, the load guard, the seeding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image
from pydantic import Field

from imagerag_sdk import Generator, GeneratorCapabilities, Options, Reference, hookimpl
from imagerag_sdk.errors import ConfigError


class TintOptions(Options):
    size: int = Field(96, ge=8, le=1024, description="Output side in pixels")
    strength: float = Field(0.6, gt=0, le=1, description="How far the references' mean colour pulls the image")
    max_references: int = Field(3, ge=1, description="References one call accepts")


class TintGenerator(Generator[TintOptions]):
    name = "example-tint"                 # what profiles write: generator: {use: example-tint}
    description = "Template generator: a prompt-seeded pattern tinted by its references' mean colours."

    @property
    def capabilities(self) -> GeneratorCapabilities:
        # in_context + uses_captions: the pipeline writes the reference template into the prompt,
        # naming image i with image_placeholder ("[img1]", "[img2]", ...).
        return GeneratorCapabilities(max_references=self.options.max_references, conditioning="in_context",
                                     uses_captions=True, image_placeholder="[img{i}]")

    def _load(self) -> None:
        # Load weights or build a client here (import torch / diffusers inside this method).
        # The base class runs it once per instance, however often load() is called.
        self.palette = np.array([[230, 80, 60], [60, 140, 220], [250, 210, 70], [90, 190, 120]], np.float32)

    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        self.load()                       # nobody promises load() ran first; it is free once done
        if len(references) > self.options.max_references:
            raise ConfigError(f"{len(references)} references given, generator '{self.name}' takes at most "
                              f"{self.options.max_references}", hint="raise max_references or pass fewer")
        image = self._paint(prompt, seed)
        if references:
            image = self._tint(image, [ref.open() for ref in references])
        return Image.fromarray(image.round().clip(0, 255).astype(np.uint8))

    def _paint(self, prompt: str, seed: int | None) -> np.ndarray:
        """A (size, size, 3) float pattern determined by the prompt and the seed."""
        digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little") if seed is not None else None)
        s = self.options.size
        y, x = np.mgrid[0:s, 0:s] / s
        a, b = self.palette[rng.choice(len(self.palette), 2, replace=False)]
        wave = (np.sin(2 * np.pi * (rng.uniform(1, 4) * x + rng.uniform(1, 4) * y)) + 1) / 2
        return a * wave[..., None] + b * (1 - wave[..., None]) + rng.normal(0, 8, (s, s, 3))

    def _tint(self, image: np.ndarray, refs: list[Image.Image]) -> np.ndarray:
        """Blend towards the mean colour of the references (each weighs the same)."""
        mean = np.mean([np.asarray(r.resize((16, 16)), np.float32).reshape(-1, 3).mean(0) for r in refs], axis=0)
        k = self.options.strength
        return (1 - k) * image + k * mean


@hookimpl
def register_generators(register):
    register(TintGenerator)
