"""What the critic and the generator share: the connection options, which make the ``openai``
client (the SDK is imported only when a component loads) and name its errors; data URLs."""

from __future__ import annotations

import base64
from typing import Any

from pydantic import Field

from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.providers import ConnectionOptions, ErrorKinds, httpx_sdk_client, require, sdk_error_kinds


def import_openai() -> Any:
    return require("openai", "imagerag-openai")


class OpenAIConnection(ConnectionOptions):
    """Where and how to reach an OpenAI(-compatible) API."""

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

    def _ids(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("organization", "project") if getattr(self, name)}

    def make_client(self) -> Any:
        openai = import_openai()
        return httpx_sdk_client(openai.OpenAI, openai.DefaultHttpxClient, self, **self._ids())

    def make_async_client(self) -> Any:
        openai = import_openai()
        return httpx_sdk_client(openai.AsyncOpenAI, openai.DefaultAsyncHttpxClient, self,
                                is_async=True, **self._ids())

    def error_kinds(self) -> ErrorKinds:
        return sdk_error_kinds(import_openai(), "OpenAIError")


def data_url(img: Any, *, max_side: int, fmt: str = "png", quality: int = 90) -> str:
    """The image downscaled to ``max_side`` and re-encoded, as a ``data:`` URL."""
    fmt = "jpeg" if fmt.lower() in ("jpg", "jpeg") else "png"
    raw = encode(fit_within(to_rgb(img), max_side), fmt=fmt.upper(), quality=quality)
    return f"data:image/{fmt};base64,{base64.b64encode(raw).decode('ascii')}"
