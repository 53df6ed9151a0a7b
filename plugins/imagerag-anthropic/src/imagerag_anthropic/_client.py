"""The connection options, which make the ``anthropic`` client and name its errors, and image
blocks. ``anthropic`` is imported only inside functions that ``load()`` (or a request) calls."""

from __future__ import annotations

import base64
from typing import Any, Literal

from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.providers import ConnectionOptions, ErrorKinds, httpx_sdk_client, require, sdk_error_kinds


def import_anthropic() -> Any:
    return require("anthropic", "imagerag-anthropic")


class AnthropicConnection(ConnectionOptions):
    """Where and how to reach the Anthropic messages API."""

    provider = "anthropic"
    key_envs = ("ANTHROPIC_API_KEY",)
    key_note = "keys are made in the Claude Console"
    endpoint = "api.anthropic.com"

    def make_client(self) -> Any:
        anthropic = import_anthropic()
        return httpx_sdk_client(anthropic.Anthropic, anthropic.DefaultHttpxClient, self)

    def make_async_client(self) -> Any:
        anthropic = import_anthropic()
        return httpx_sdk_client(anthropic.AsyncAnthropic, anthropic.DefaultAsyncHttpxClient, self,
                                is_async=True)

    def error_kinds(self) -> ErrorKinds:
        return sdk_error_kinds(import_anthropic(), "AnthropicError")


def image_block(img: Any, *, max_side: int, fmt: Literal["png", "jpeg"] = "png",
                quality: int = 90) -> dict[str, Any]:
    """A base64 image content block, downscaled to ``max_side`` and re-encoded."""
    data = encode(fit_within(to_rgb(img), max_side), fmt="JPEG" if fmt == "jpeg" else "PNG",
                  quality=quality)
    return {"type": "image", "source": {"type": "base64", "media_type": f"image/{fmt}",
                                        "data": base64.b64encode(data).decode("ascii")}}
