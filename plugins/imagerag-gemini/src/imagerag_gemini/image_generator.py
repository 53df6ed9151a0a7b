"""The ``gemini-image`` generator: a Gemini image model with the references in its context.

Each reference goes into the request as an image part labelled with its placeholder
(``<image 1>`` …), followed by the prompt, which for a reference pass already holds the core's
template ("According to these examples of <caption>: <image 1>, … generate <prompt>"). The first
image part of the answer is the result.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

from PIL import Image
from pydantic import Field

from imagerag_sdk.errors import ConfigError, ProviderError
from imagerag_sdk.images import BadImageError, decode_rgb
from imagerag_sdk.providers import APIGenerator, CallRecord, usage_dict
from imagerag_sdk.types import GeneratorCapabilities, Reference

from . import _client
from ._client import GeminiConnection

PLACEHOLDER = "<image {i}>"


class GeminiImageOptions(GeminiConnection):
    model: str = Field("gemini-2.5-flash-image", description="Gemini image model id, e.g. "
                       "gemini-2.5-flash-image, gemini-3-pro-image-preview")
    timeout: float = Field(120.0, gt=0, description="Seconds to wait for one HTTP request "
                           "(converted to the milliseconds google-genai expects)")
    max_references: int = Field(3, ge=0, le=14, description="Reference images per call (Google "
                                "documents up to 3 as working best for gemini-2.5-flash-image; "
                                "Gemini 3 Pro Image takes up to 14)")
    max_image_side: int = Field(1024, ge=64, description="References are downscaled to this side "
                                "before upload")
    aspect_ratio: str | None = Field(None, description="Output aspect ratio, e.g. 1:1, 16:9; "
                                     "None: the model's choice")
    label_references: bool = Field(True, description="Put '<image i>:' before reference i so the "
                                   "placeholders in the prompt name the right image")
    image_format: Literal["png", "jpeg"] = Field("png", description="Encoding of uploaded references")


class GeminiImageGenerator(APIGenerator[GeminiImageOptions]):
    """Generates with a Gemini image model; references go in context as image parts."""

    name = "gemini-image"
    description = ("Gemini image model (e.g. gemini-2.5-flash-image) with the references in "
                   "context. Needs GEMINI_API_KEY or GOOGLE_API_KEY.")


    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_usage: dict[str, Any] | None = None
        self.last_text: str = ""

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=self.options.max_references,
                                     conditioning="in_context", uses_captions=True,
                                     image_placeholder=PLACEHOLDER)

    def _contents(self, prompt: str, references: Sequence[Reference]) -> list[Any]:
        o = self.options
        parts: list[Any] = []
        for i, ref in enumerate(references, start=1):
            if o.label_references:
                parts.append(PLACEHOLDER.format(i=i) + ":")
            parts.append(_client.image_part(ref.open(), max_side=o.max_image_side, fmt=o.image_format))
        parts.append(prompt)
        return parts

    def _config(self, seed: int | None):
        _, types = _client.import_genai()
        config: dict[str, Any] = {"response_modalities": ["TEXT", "IMAGE"]}
        if seed is not None:
            config["seed"] = int(seed) % (2**31)
        if self.options.aspect_ratio:
            config["image_config"] = types.ImageConfig(aspect_ratio=self.options.aspect_ratio)
        return types.GenerateContentConfig(**config)

    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        if len(references) > self.options.max_references:
            raise ConfigError(f"gemini-image takes at most {self.options.max_references} references, "
                              f"got {len(references)}", hint="raise 'max_references' or pass fewer")
        self.load()
        return self.call({"model": self.options.model, "contents": self._contents(prompt, references),
                          "config": self._config(seed)})

    def send(self, params: dict[str, Any]) -> Any:
        return self.client.models.generate_content(**params)

    def to_answer(self, response: Any, params: dict[str, Any], record: CallRecord) -> Image.Image:
        self.last_usage = usage_dict(_client.usage_fields(getattr(response, "usage_metadata", None)))
        return self._image_of(response)

    def _image_of(self, response: Any) -> Image.Image:
        texts: list[str] = []
        for cand in getattr(response, "candidates", None) or []:
            content = getattr(cand, "content", None)
            for part in getattr(content, "parts", None) or []:
                blob = getattr(part, "inline_data", None)
                if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                    data = blob.data if isinstance(blob.data, bytes) else base64.b64decode(blob.data)
                    try:
                        return decode_rgb(data, name=f"{self.options.model} output")
                    except BadImageError as exc:
                        raise ProviderError(f"model {self.options.model} returned an unreadable "
                                            f"image: {exc.message}", provider=self.provider) from exc
                if getattr(part, "text", None):
                    texts.append(part.text)
        self.last_text = "\n".join(texts)
        reason = _client.finish_reason(response) or "no reason given"
        said = f"; it said: {self.last_text[:200]!r}" if self.last_text else ""
        raise ProviderError(f"model {self.options.model} returned no image ({reason}){said}",
                            provider=self.provider, hint="check that the model generates images (e.g. "
                            "gemini-2.5-flash-image) and that the prompt passes its safety filters")
