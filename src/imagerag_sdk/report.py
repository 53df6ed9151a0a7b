"""``report.html``: one page showing a run at a glance, rendered from ``templates/report.html.j2``.

It is rendered over the written trace (:class:`~imagerag_sdk.runtrace.RunTrace` as ``trace.json``
holds it), where long texts are previews naming their side file (``texts/….txt``); the page links
those files. Images are the run folder's own files by relative path; a candidate hit that was not
used (so not copied) gets a small thumbnail in ``thumbs/``. Autoescaped: any text is shown as text.
Jinja2 is imported here only, when a report is written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .runtrace import HitRecord, QueryRecord, Round, RunTrace, StageTiming, UsedReference

BIG, BIGGEST = 384, 544
"""Display widths of the initial and final images; smaller ones are upscaled, pixelated."""
SMALL = 160
"""Display box of a reference or candidate image."""
THUMB = 192
"""Largest side of a candidate's thumbnail in ``thumbs/``."""
_SIDE_FILE = re.compile(r"texts/[0-9a-f]{16}\.txt")

SaveImage = Callable[[Image.Image, str], "str | None"]


@dataclass
class Picture:
    src: str | None
    """Run-relative path, or ``None`` when the image could not be read (``problem`` says why)."""
    alt: str
    width: int = 0
    """Display width in CSS pixels (0: let the page decide)."""
    pixelated: bool = False
    problem: str | None = None


@dataclass
class Candidate:
    hit: HitRecord
    picture: Picture
    used: UsedReference | None = None
    reason: str | None = None
    """Why it was not used (dropped, or not returned by the reranker)."""
    rerank: str | None = None


@dataclass
class Concept:
    query: QueryRecord
    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class Segment:
    stage: StageTiming
    percent: float


class _Pictures:
    """Display sizes of the run folder's images, and thumbnails of corpus images."""

    def __init__(self, run_dir: Path, save_image: SaveImage | None) -> None:
        self.run_dir, self.save_image = run_dir, save_image

    def local(self, rel: str | None, alt: str, least: int, most: int | None = None) -> Picture:
        """A run-relative image shown between ``least`` and ``most`` wide; nearest-neighbour
        upscaled (pixelated) when it is narrower than ``least``."""
        if not rel:
            return Picture(None, alt, problem="not written")
        try:
            with Image.open(self.run_dir / rel) as im:
                width = im.width
        except Exception as exc:  # a missing or corrupt image must not stop the report
            return Picture(None, alt, problem=f"{type(exc).__name__}: {exc}")
        return Picture(rel, alt, min(max(width, least), most or least), pixelated=width < least)

    def corpus(self, path: str, alt: str) -> Picture:
        """A corpus image not copied into the run: a thumbnail in ``thumbs/``."""
        name = f"thumbs/{hashlib.sha256(path.encode()).hexdigest()[:16]}.png"
        if not (self.run_dir / name).exists():
            if self.save_image is None:
                return Picture(None, alt, problem="not copied into the run folder")
            try:
                with Image.open(path) as im:
                    thumb = im.convert("RGB")
                    thumb.thumbnail((THUMB, THUMB))
            except Exception as exc:  # the corpus may have moved since the run
                return Picture(None, alt, problem=f"{type(exc).__name__}: {exc}")
            (self.run_dir / "thumbs").mkdir(exist_ok=True)
            self.save_image(thumb, name)
        return self.local(name, alt, SMALL)


def concepts(rnd: Round, pictures: _Pictures) -> list[Concept]:
    """Each query of the round with its candidates in retrieval order: used ones, and why others were not."""
    used = {(u.query, u.path): u for u in rnd.used}
    dropped = {(d.query, d.path): d.reason for d in rnd.dropped}
    out = []
    for q in rnd.queries:
        concept = Concept(q)
        reranked = None if rnd.reranked is None else [h.path for h in rnd.reranked.get(q.query, [])]
        for hit in rnd.hits.get(q.query, []):
            key = (q.query, hit.path)
            ref = used.get(key)
            picture = (pictures.local(ref.copied_to, hit.path, SMALL) if ref and ref.copied_to
                       else pictures.corpus(hit.path, hit.path))
            rank = None
            reason = dropped.get(key)
            if reranked is not None:
                if hit.path in reranked:
                    rank = f"reranked #{reranked.index(hit.path) + 1}"
                elif reason is None:
                    reason = "not returned by the reranker"
            concept.candidates.append(Candidate(hit, picture, ref, None if ref else reason, rank))
        out.append(concept)
    return out


def timeline(stages: list[StageTiming]) -> list[Segment]:
    """Stages as shares of their total time (equal shares when none took measurable time)."""
    total = sum(s.seconds for s in stages)
    return [Segment(s, 100 * s.seconds / total if total > 0 else 100 / len(stages)) for s in stages]


def link_side_files(text: object) -> str:
    """Escaped ``text`` with side-file names (``texts/….txt``) as links."""
    from markupsafe import Markup, escape

    escaped = str(escape(str(text)))
    return Markup(_SIDE_FILE.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


def render_report(trace: RunTrace, run_dir: Path, *, save_image: SaveImage | None = None) -> str:
    """The page for ``trace`` of the run in ``run_dir``; ``save_image(image, name)`` writes thumbnails."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("imagerag_sdk", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["side_links"] = link_side_files
    pictures = _Pictures(run_dir, save_image)
    initial = trace.generations[0] if trace.generations else None
    final = trace.final_image or (trace.generations[-1].image if len(trace.generations) > 1 else None)
    return env.get_template("report.html.j2").render(
        trace=trace, initial=initial,
        initial_picture=pictures.local(initial.image, "initial image", BIG, BIGGEST) if initial else None,
        final_picture=pictures.local(final, "final image", BIG, BIGGEST) if final else None,
        generations=[(g, pictures.local(g.image, f"round {g.round}", SMALL)) for g in trace.generations],
        given=[(r.caption or r.path, pictures.local(r.copied_to, r.path, SMALL)) for r in trace.picked]
        + [(u.path, pictures.local(u.copied_to, u.path, SMALL)) for u in trace.user_images],
        rounds=[(rnd, concepts(rnd, pictures)) for rnd in trace.rounds],
        segments=timeline(trace.stages), pretty=_pretty)


def _pretty(value: object) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
