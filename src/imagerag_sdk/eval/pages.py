"""What the eval pages are made of: tables (written both as Markdown and as HTML, so the two agree),
numbers formatted alike, thumbnails inlined as ``data:`` URIs, and the template that renders
``results.html`` and ``compare.html`` (``templates/eval_results.html.j2``, autoescaped: prompts and
errors are user text). Jinja2 is imported only when a page is rendered.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THUMB = 160
"""Largest side of a thumbnail, in pixels (smaller images are shown this big, pixelated)."""
JPEG_QUALITY = 85
DASH = "—"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~!])")


@dataclass
class Cell:
    text: str
    bold: bool = False
    num: bool = False
    """Right-aligned, tabular figures."""
    tone: str = ""
    """``up`` / ``down``: a paired interval that excludes zero, above / below it."""


@dataclass
class Table:
    title: str
    head: list[str]
    rows: list[list[Cell]]
    note: str = ""

    def numeric(self) -> list[bool]:
        """Per column: whether it holds figures (right-aligned, heading too)."""
        return [any(i < len(r) and r[i].num for r in self.rows) for i in range(len(self.head))]


@dataclass
class Thumb:
    uri: str | None
    label: str
    caption: list[str] = field(default_factory=list)
    """Lines under the image (each kept on one line: the scores, metric by metric)."""
    width: int = 0
    pixelated: bool = False
    problem: str | None = None


@dataclass
class GridRow:
    """One system's images of one item and seed."""
    system: str
    shots: list[Thumb]
    verdict: str = ""
    error: str | None = None
    report: str | None = None
    """Link to the run's report.html, relative to the page."""


@dataclass
class GridItem:
    item: str
    seed: Any
    prompt: str
    concept: str
    rows: list[GridRow] = field(default_factory=list)


@dataclass
class Failure:
    system: str
    item: str
    seed: Any
    prompt: str
    error: str


# -- numbers --------------------------------------------------------------------------------------
def finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def decimals(errors: list[Any], least: int = 3, most: int = 6) -> int:
    """Decimals that show the smallest standard error of ``errors`` to two significant digits
    (between ``least`` and ``most``): one column of a table uses one count."""
    positive = [e for e in map(finite, errors) if e is not None and e > 0]
    if not positive:
        return least
    return max(least, min(most, 1 - math.floor(math.log10(min(positive)))))


def mean_se(stat: dict[str, Any] | None, places: int) -> str:
    """``mean ± se`` of a summary entry (``{"mean", "se", "n"}``); the error is left out when
    there is none (a single value)."""
    mean = finite((stat or {}).get("mean"))
    if mean is None:
        return DASH
    se = finite((stat or {}).get("se"))
    if se is None:
        return f"{mean:.{places}f} (n={(stat or {}).get('n', '?')})"
    return f"{mean:.{places}f} ± {se:.{places}f}"


def signed(value: Any, places: int) -> str:
    number = finite(value)
    return DASH if number is None else f"{number:+.{places}f}"


def interval(low: Any, high: Any, places: int) -> str:
    if finite(low) is None or finite(high) is None:
        return DASH
    return f"[{signed(low, places)}, {signed(high, places)}]"


def tone(low: Any, high: Any) -> str:
    lo, hi = finite(low), finite(high)
    if lo is None or hi is None:
        return ""
    return "up" if lo > 0 else "down" if hi < 0 else ""


def percent(share: Any) -> str:
    number = finite(share)
    return DASH if number is None else f"{100 * number:.0f} %"


# -- Markdown ---------------------------------------------------------------------------------------
def md_text(text: Any) -> str:
    """User text on one Markdown line: newlines as spaces, Markdown and HTML punctuation escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def markdown_table(table: Table) -> str:
    def cell(c: Cell) -> str:
        text = c.text.replace("|", "\\|") if c.num else md_text(c.text)  # figures are ours, not user text
        return f"**{text}**" if c.bold else text

    lines = [f"## {table.title}", ""]
    if table.note:
        lines += [md_text(table.note), ""]
    lines.append("| " + " | ".join(md_text(h) for h in table.head) + " |")
    lines.append("|" + "|".join("---:" if num else "---" for num in table.numeric()) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


# -- images ---------------------------------------------------------------------------------------
class Thumbnails:
    """JPEG thumbnails of image files as ``data:`` URIs, each file encoded once."""

    def __init__(self, box: int = THUMB) -> None:
        self.box = box
        self._done: dict[Path, tuple[str, int, int] | str] = {}

    def get(self, path: Path | None, label: str, caption: list[str] | None = None) -> Thumb:
        caption = caption or []
        if path is None:
            return Thumb(None, label, caption, problem="not recorded")
        if path not in self._done:
            self._done[path] = self._encode(path)
        done = self._done[path]
        if isinstance(done, str):
            return Thumb(None, label, caption, problem=done)
        uri, width, height = done
        longest = max(width, height)
        shown = round(width * self.box / longest) if longest < self.box else width
        return Thumb(uri, label, caption, width=shown, pixelated=longest < self.box)

    def _encode(self, path: Path) -> tuple[str, int, int] | str:
        from ..images import BadImageError, encode, fit_within, load_rgb

        try:
            image = fit_within(load_rgb(path), self.box)
        except BadImageError as exc:  # a missing or unreadable image is shown as such; the page goes on
            return exc.message
        return data_uri(encode(image, fmt="JPEG", quality=JPEG_QUALITY), "image/jpeg"), image.width, image.height


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# -- HTML -----------------------------------------------------------------------------------------
def render_html(**context: Any) -> str:
    """The page from ``templates/eval_results.html.j2``. Context: ``title``, ``meta`` (label,
    value pairs), ``notes``, ``tables``, ``chart`` (a data URI or ``None``), ``chart_note``,
    ``failures``, ``grid``, ``grid_note``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("imagerag_sdk", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("eval_results.html.j2").render(zip=zip, **context)
