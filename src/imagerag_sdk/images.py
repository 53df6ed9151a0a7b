"""Image loading with clear errors: EXIF orientation applied, RGB out, pixel limit enforced."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageRAGError

MAX_PIXELS = 178_956_970  # Pillow's default bomb limit; callers may pass their own


class BadImageError(ImageRAGError):
    """An image file that cannot be decoded (empty, truncated, not an image, too large)."""


def load_rgb(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully, upright, as RGB; raise :class:`BadImageError` saying why not."""
    return decode_rgb(read_image(path), name=str(Path(path)), max_pixels=max_pixels)


def read_image(path: str | Path) -> bytes:
    """An image file's bytes (not decoded); :class:`BadImageError` when it cannot be read or is empty."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadImageError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if not data:
        raise BadImageError(f"{p} is empty (0 bytes)")
    return data


def check_images(paths, *, what: str = "image", max_pixels: int | None = MAX_PIXELS) -> list[str]:
    """Decode each of ``paths`` fully with :func:`load_rgb` (the indexer's pixel limit); one line
    per file that cannot be used (missing, not an image, truncated, a decompression bomb), each
    saying how to fix it; ``[]`` when all can be used."""
    limit = f" of at most {max_pixels:,} pixels" if max_pixels is not None else ""
    problems = []
    for path in paths:
        try:
            load_rgb(path, max_pixels=max_pixels)
        except BadImageError as exc:
            problems.append(f"{what}: {exc.message} — pass the path of a complete image file "
                            f"(PNG, JPEG, WebP …){limit}")
    return problems


def bad_images_error(problems: list[str]) -> BadImageError:
    """One :class:`BadImageError` for every line of :func:`check_images`, in ``.problems``."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    error = BadImageError(problems[0] + more)
    error.problems = list(problems)  # type: ignore[attr-defined]
    return error


def decode_rgb(data: bytes, *, name: str = "<bytes>", max_pixels: int | None = MAX_PIXELS,
               draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode fully, upright, RGB. ``draft=(w, h)`` lets JPEGs decode at a reduced scale that
    still covers that size. Thread-safe: the pixel limit is checked here, not through the global
    warning filters."""
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        if max_pixels is not None and img.width * img.height > max_pixels:
            raise BadImageError(f"{name} has {img.width}x{img.height} pixels, over the limit of {max_pixels}")
        if draft is not None and img.format == "JPEG":
            img.draft("RGB", draft)
        img.load()
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{name} is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{name} is not a readable image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name} is truncated or corrupt: {exc}") from exc
    img = ImageOps.exif_transpose(img) or img
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode (CMYK, P, LA, I;16, RGBA…) to RGB; transparency composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() or 1.0
        img = Image.fromarray((arr / top * 255.0).clip(0, 255).astype("uint8"), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    return img.convert("RGB")


def fit_within(img: Image.Image, max_side: int) -> Image.Image:
    """Downscale so the longer side is at most ``max_side`` (never upscales)."""
    if max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                      Image.Resampling.LANCZOS, reducing_gap=2.0)


def encode(img: Image.Image, *, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()
