"""The ``gpt-image`` generator: OpenAI image models, references passed in context through edits."""

from __future__ import annotations

import base64
from typing import Any, Literal, Sequence

from PIL import Image
from pydantic import Field

from imagerag_sdk.errors import ConfigError, ProviderError
from imagerag_sdk.images import decode_rgb, encode, fit_within
from imagerag_sdk.roles import Generator
from imagerag_sdk.types import GeneratorCapabilities, Reference

from ._client import PROVIDER, ConnectionOptions, import_openai, make_clients, map_error

API_MAX_REFERENCES = 16
"""The images.edit endpoint takes up to 16 input images for gpt-image models."""


class GPTImageOptions(ConnectionOptions):
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


class GPTImageGenerator(Generator[GPTImageOptions]):
    """Text-to-image through images.generate; with references, images.edit (in-context)."""

    name = "gpt-image"
    description = ("OpenAI gpt-image models: images.generate for the first pass, images.edit with the "
                   "retrieved references in context. No seed control. Needs OPENAI_API_KEY.")

    @classmethod
    def preflight(cls, options: Any) -> list[str]:
        """A missing API key, found before anything loads."""
        from ._client import key_problems

        return key_problems(options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client = None
        self.last_usage: dict[str, Any] | None = None

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=self.options.max_references,
                                     conditioning="in_context", uses_captions=True,
                                     image_placeholder="<image {i}>")

    def _load(self) -> None:
        self._client = make_clients(self.options)

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
        openai = import_openai()
        o = self.options
        if len(references) > o.max_references:
            raise ConfigError(f"gpt-image: {len(references)} references given, at most "
                              f"{o.max_references} allowed", hint=f"pass fewer, or raise the "
                              f"max_references option (API limit {API_MAX_REFERENCES})")
        params = {**self._common(), "prompt": prompt}
        try:
            if references:
                files = [self._reference_file(i, r) for i, r in enumerate(references, 1)]
                if o.input_fidelity:
                    params["input_fidelity"] = o.input_fidelity
                response = self._client.images.edit(image=files, **params)
            else:
                response = self._client.images.generate(**params)
        except openai.OpenAIError as exc:
            what = f"image {'edit' if references else 'generation'} with {o.model}"
            raise map_error(exc, options=o, what=what) from exc
        usage = getattr(response, "usage", None)
        self.last_usage = usage.model_dump(exclude_none=True) if usage is not None else None
        data = response.data or []
        if not data or not data[0].b64_json:
            raise ProviderError(f"{o.model} returned no image (the request may have been refused "
                                "by moderation)", provider=PROVIDER,
                                hint="rephrase the prompt or check the references")
        return decode_rgb(base64.b64decode(data[0].b64_json), name=f"{o.model} output")
