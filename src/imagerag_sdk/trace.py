"""Run folders: images, copied references, and ``trace.json`` written as every stage starts and ends.

The trace is a :class:`~imagerag_sdk.runtrace.RunTrace` the pipeline fills; it is rewritten atomically (temp file + rename) each time a stage starts or ends, so a run
that is interrupted or fails still leaves a readable trace saying how far it got. Secret values (API keys
read from the environment or a profile) are scrubbed from everything written.

``trace.json`` stays small: a text longer than :data:`INLINE_CHARS` is written once to
``texts/<sha256 prefix>.txt`` and the trace keeps its first :data:`PREVIEW_CHARS` characters and a
pointer to the file. Images are files of the run folder, named in the trace, never embedded.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from . import atomic
from .errors import ConfigError
from .redact import env_secrets, scrub
from .runtrace import SCHEMA_VERSION, RunTrace, StageName, StageTiming, Status, Truncation, now

__all__ = ["INLINE_CHARS", "PREVIEW_CHARS", "SCHEMA_VERSION", "TEXT_DIR", "RunRecorder", "env_secrets",
           "new_run_dir", "round_s", "slugify"]
INLINE_CHARS = 10_000
"""Texts longer than this go to a side file; the trace keeps a preview and the file's name."""
PREVIEW_CHARS = 500
TEXT_DIR = "texts"
def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "run"


def new_run_dir(out: str | Path, prompt: str, name: str | None = None) -> Path:
    """A new folder under ``out``: ``name``, or the time and the prompt's slug (numbered if taken)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if name is not None:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ConfigError(f"run name {name!r} is not a folder name", hint="use letters, digits, '-' and '_'")
        try:
            (out / name).mkdir()
        except FileExistsError:
            raise ConfigError(f"run folder {out / name} already exists", hint="choose a new run name") from None
        return out / name
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = out / f"{stamp}-{slugify(prompt)}"
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = Path(f"{base}-{n}")


class RunRecorder:
    """Holds the :class:`RunTrace` of one run and writes it into the run folder."""

    def __init__(self, run_dir: Path | None, trace: RunTrace, *, secrets: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.trace = trace
        self.secrets = {s for s in set(secrets) | env_secrets() if s}
        self._t0 = time.perf_counter()
        if run_dir is not None:
            (run_dir / "references").mkdir(parents=True, exist_ok=True)

    # -- recording -----------------------------------------------------------------------------
    @contextmanager
    def stage(self, name: StageName, *, round: int, component: str | None = None) -> Iterator[StageTiming]:
        """Time a stage; its record is yielded so the caller can add details."""
        record = StageTiming(stage=name, round=round, component=component)
        start = time.perf_counter()
        self.save()  # the trace exists (status running) while the first stage runs
        try:
            yield record
            record.status = "done"
        except BaseException as exc:
            record.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.seconds = round_s(time.perf_counter() - start)
            self.trace.stages.append(record)
            self.save()

    def save_image(self, image: Image.Image, name: str) -> str | None:
        if self.run_dir is None:
            return None
        with atomic.replacing(self.run_dir / name) as tmp:
            image.save(tmp, format="PNG")
        return name

    def copy_reference(self, source: str, label: str) -> str | None:
        """Copy a reference image into ``references/<label>-<name>``; return its run-relative path."""
        if self.run_dir is None:
            return None
        src = Path(source)
        dest = self.run_dir / "references" / f"{label}-{src.name}"
        if not dest.exists():
            shutil.copyfile(src, dest)
        return str(dest.relative_to(self.run_dir))

    def side_text(self, text: str) -> str | None:
        """Write ``text`` (scrubbed) once to ``texts/<sha256 prefix>.txt``; its run-relative path."""
        if self.run_dir is None:
            return None
        text = self.scrub(text)
        name = f"{TEXT_DIR}/{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
        path = self.run_dir / name
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            atomic.write_text(path, text)
        return name

    def record_cuts(self, cuts: Iterable[Any]) -> list[Truncation]:
        """Trace entries for :class:`~imagerag_sdk.limits.Cut` s, each full text in a side file."""
        return [Truncation(what=c.what, where=c.where, original_chars=len(c.text), kept_chars=c.kept,
                           full_text=self.side_text(c.text)) for c in cuts]

    def finish(self, status: Status, error: str | None = None) -> None:
        self.trace.status = status
        self.trace.error = self.scrub(error) if error else None
        self.trace.finished_at = now()
        self.trace.seconds = round_s(time.perf_counter() - self._t0)
        self.save()
        self.write_report()

    # -- writing -------------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def to_json(self) -> str:
        """``trace.json``'s text: the trace with long texts moved to side files, secrets scrubbed."""
        return self.scrub(json.dumps(self._compact(self.trace.to_dict()), indent=2, ensure_ascii=False))

    def written(self) -> RunTrace:
        """The trace as ``trace.json`` holds it (long texts previews naming their side files)."""
        return RunTrace.model_validate_json(self.to_json())

    def render_report(self) -> str:
        """``report.html`` over the written trace; candidate hits get thumbnails in ``thumbs/``."""
        from .report import render_report

        assert self.run_dir is not None
        return render_report(self.written(), self.run_dir, save_image=self.save_image)

    def _compact(self, value: Any) -> Any:
        """``value`` with every long text (a key too) replaced by a preview naming its side file."""
        if isinstance(value, str):
            if len(value) <= INLINE_CHARS:
                return value
            text = self.scrub(value)  # before cutting, so no secret is left half-masked
            where = self.side_text(text)
            return (text[:PREVIEW_CHARS] + f" … [{len(text)} characters; "
                    + (f"full text: {where}]" if where else "full text not kept]"))
        if isinstance(value, dict):
            return {self._compact(k): self._compact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._compact(v) for v in value]
        return value

    def save(self) -> None:
        if self.run_dir is None:
            return
        atomic.write_text(self.run_dir / "trace.json", self.to_json())

    def write_report(self) -> None:
        if self.run_dir is None:
            return
        html = self.scrub(self.render_report())
        atomic.write_text(self.run_dir / "report.html", html)


def round_s(seconds: float) -> float:
    return round(seconds, 4)
