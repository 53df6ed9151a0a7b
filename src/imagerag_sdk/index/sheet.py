"""Contact sheet: the hits of a search as one image, with rank, score and file name under each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from ..images import BadImageError, fit_within, load_rgb
from ..types import Hit

THUMB = 192
LABEL_H = 30


def contact_sheet(hits: Sequence[Hit], out: str | Path, *, columns: int = 5, thumb: int = THUMB) -> Path:
    """Write the hits (best first, left to right) as a PNG/JPEG grid; unreadable files show grey."""
    out = Path(out)
    columns = max(1, min(columns, len(hits) or 1))
    rows = max(1, -(-len(hits) // columns))
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + LABEL_H)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, hit in enumerate(hits):
        x, y = (i % columns) * thumb, (i // columns) * (thumb + LABEL_H)
        try:
            img = load_rgb(hit.path)
            if max(img.size) < thumb:  # small images are scaled up to fill their cell
                scale = thumb / max(img.size)
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
            img = fit_within(img, thumb)
        except BadImageError:
            img = Image.new("RGB", (thumb, thumb), (200, 200, 200))
        sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        name = Path(hit.path).name
        draw.text((x + 4, y + thumb + 2), f"#{i + 1}  {hit.score:.3f}", fill="black")
        draw.text((x + 4, y + thumb + 15), name[:30], fill=(80, 80, 80))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
