"""The connection options (the core makes the ``anthropic`` client from them when the critic
loads, and reads its errors), and image blocks."""

from __future__ import annotations

import base64
from typing import Any, Literal

from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.providers import SDKConnection


class AnthropicConnection(SDKConnection):
    """Where and how to reach the Anthropic messages API."""

    sdk, distribution = "anthropic", "imagerag-anthropic"
    client_class, async_client_class, base_error = "Anthropic", "AsyncAnthropic", "AnthropicError"
    provider = "anthropic"
    key_envs = ("ANTHROPIC_API_KEY",)
    key_note = "keys are made in the Claude Console"
    endpoint = "api.anthropic.com"


def image_block(img: Any, *, max_side: int, fmt: Literal["png", "jpeg"] = "png",
                quality: int = 90) -> dict[str, Any]:
    """A base64 image content block, downscaled to ``max_side`` and re-encoded."""
    data = encode(fit_within(to_rgb(img), max_side), fmt="JPEG" if fmt == "jpeg" else "PNG",
                  quality=quality)
    return {"type": "image", "source": {"type": "base64", "media_type": f"image/{fmt}",
                                        "data": base64.b64encode(data).decode("ascii")}}
