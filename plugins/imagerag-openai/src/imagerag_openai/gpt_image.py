"""The ``gpt-image`` generator: OpenAI image models, references passed in context through edits."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

from PIL import Image
from pydantic import Field

from imagerag_sdk.errors import ConfigError, ProviderError
from imagerag_sdk.images import decode_rgb, encode, fit_within
from imagerag_sdk.providers import APIGenerator, CallRecord, usage_dict
from imagerag_sdk.types import GeneratorCapabilities, Reference

from ._client import OpenAIConnection

API_MAX_REFERENCES = 16
"""The images.edit endpoint takes up to 16 input images for gpt-image models."""


class GPTImageOptions(OpenAIConnection):
    model: str = Field("gpt-image-1", description="OpenAI image model (gpt-image-1, gpt-image-1-mini, …)")
    size: str = Field("1024x1024", description="1024x1024, 1536x1024, 1024x1536 or auto")
    quality: Literal["auto", "low", "medium", "high"] = Field("auto", description="Rendering quality (cost)")
    max_references: int = Field(
        3, ge=0, le=API_MAX_REFERENCES,
        description=f"References per call (the API takes up to {API_MAX_REFERENCES}; the paper's "
        "in-context budget is 3)")
    input_fidelity: Literal["low", "high"] | None = Field(
        None, description="How closely edits keep the reference images' details (gpt-image-1)")
    reference_max_side: int = Field(1024, ge=64, description="References are downscaled to this side "
                                    "and sent as PNG")
    timeout: float = Field(300.0, gt=0, description="Seconds to wait for one image request")


class GPTImageGenerator(APIGenerator[GPTImageOptions]):
    """Text-to-image through images.generate; with references, images.edit (in-context)."""

    name = "gpt-image"
    description = ("OpenAI gpt-image models: images.generate for the first pass, images.edit with the "
                   "retrieved references in context. No seed control. Needs OPENAI_API_KEY.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_usage: dict[str, Any] | None = None

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=self.options.max_references,
                                     conditioning="in_context", uses_captions=True,
                                     image_placeholder="<image {i}>")

    def _common(self) -> dict[str, Any]:
        o = self.options
        params: dict[str, Any] = {"model": o.model, "prompt": "", "n": 1, "size": o.size,
                                  "quality": o.quality}
        if o.model.startswith("dall-e"):
            params["response_format"] = "b64_json"
            params.pop("quality")
        return params

    def _reference_file(self, i: int, ref: Reference) -> tuple[str, bytes, str]:
        img = fit_within(ref.open(), self.options.reference_max_side)
        return (f"reference_{i}.png", encode(img, fmt="PNG"), "image/png")

    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        """One image; ``seed`` is accepted but the API has no seed (outputs vary per call)."""
        self.load()
        o = self.options
        if len(references) > o.max_references:
            raise ConfigError(f"gpt-image: {len(references)} references given, at most "
                              f"{o.max_references} allowed", hint=f"pass fewer, or raise the "
                              f"max_references option (API limit {API_MAX_REFERENCES})")
        params = {**self._common(), "prompt": prompt}
        if references:
            params["image"] = [self._reference_file(i, r) for i, r in enumerate(references, 1)]
            if o.input_fidelity:
                params["input_fidelity"] = o.input_fidelity
        what = f"image {'edit' if references else 'generation'} with {o.model}"
        return self.call(params, what=what)

    def send(self, params: dict[str, Any]) -> Any:
        """images.edit when the params carry reference images, else images.generate."""
        images = self.client.images
        return images.edit(**params) if "image" in params else images.generate(**params)

    def to_answer(self, response: Any, params: dict[str, Any], record: CallRecord) -> Image.Image:
        o = self.options
        self.last_usage = usage_dict(getattr(response, "usage", None))
        data = response.data or []
        if not data or not data[0].b64_json:
            raise ProviderError(f"{o.model} returned no image (the request may have been refused "
                                "by moderation)", provider=self.provider,
                                hint="rephrase the prompt or check the references")
        return decode_rgb(base64.b64decode(data[0].b64_json), name=f"{o.model} output")
