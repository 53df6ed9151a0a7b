"""What a fake provider server received: the images and JSON values inside a request body,
and a sample picture to send."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageDraw

_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"RIFF": "WEBP", b"GIF8": "GIF"}


def sample_image(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic RGB picture with some structure (so encoders do real work)."""
    img = Image.new("RGB", size, (90, 140, 200))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle([w // 8, h // 2, w // 2, h - h // 8], fill=(200, 40, 40))
    draw.ellipse([w // 2, h // 6, w - w // 8, h // 2], fill=(245, 245, 235))
    return img


def walk_json(node: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair of a JSON document, depth first; list items have key ``None``."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk_json(v)
    elif isinstance(node, list):
        for v in node:
            yield None, v
            yield from walk_json(v)


def decode_image_payload(value: str) -> Image.Image | None:
    """The image in a base64 (standard or URL-safe) string or ``data:`` URL, else ``None``."""
    if not isinstance(value, str) or len(value) < 64:
        return None
    if value.startswith("data:"):
        value = value.partition(",")[2]
    raw = None
    for altchars in (None, b"-_"):  # standard, then URL-safe base64 (google-genai sends that)
        try:
            raw = base64.b64decode(value, altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if raw is None:
        return None
    if not any(raw.startswith(m) for m in _MAGIC):
        return None
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except Exception:
        return None
    return img
