"""What the critic and the generator share: the connection options (the core makes the ``openai``
client from them when a component loads, and reads its errors), and image data URLs."""

from __future__ import annotations

import base64
from typing import Any

from pydantic import Field

from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.providers import SDKConnection


class OpenAIConnection(SDKConnection):
    """Where and how to reach an OpenAI(-compatible) API."""

    sdk, distribution = "openai", "imagerag-openai"
    client_class, async_client_class, base_error = "OpenAI", "AsyncOpenAI", "OpenAIError"
    provider = "openai"
    key_envs = ("OPENAI_API_KEY",)
    key_note = "for a local OpenAI-compatible server that ignores keys, set api_key to any string"
    endpoint = "api.openai.com"
    access_note = "organization / project access, verified organization for gpt-image"

    base_url: str | None = Field(
        None, description="Any OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM), "
        "http://localhost:11434/v1 (Ollama), http://localhost:1234/v1 (LM Studio); "
        "default: api.openai.com (or OPENAI_BASE_URL)")
    organization: str | None = Field(None, description="OpenAI organization id (optional)")
    project: str | None = Field(None, description="OpenAI project id (optional)")

    def client_extra(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("organization", "project") if getattr(self, name)}


def data_url(img: Any, *, max_side: int, fmt: str = "png", quality: int = 90) -> str:
    """The image downscaled to ``max_side`` and re-encoded, as a ``data:`` URL."""
    fmt = "jpeg" if fmt.lower() in ("jpg", "jpeg") else "png"
    raw = encode(fit_within(to_rgb(img), max_side), fmt=fmt.upper(), quality=quality)
    return f"data:image/{fmt};base64,{base64.b64encode(raw).decode('ascii')}"
