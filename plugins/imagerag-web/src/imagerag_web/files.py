"""Files and thumbnails (``/files/…``, ``/thumbs/…``) from the corpora roots and the runs folder
only, and the run folders as the API lists them.

Corpus files: image files under a corpus root. Run files: anything inside a run folder (images,
``report.html`` with its relative links, ``trace.json``). Every path is checked by
:func:`~imagerag_web.security.confined`: no ``..``, no absolute path, no NUL, no link out."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from imagerag_sdk.errors import ConfigError
from imagerag_sdk.images import MAX_PIXELS, BadImageError, decode_rgb, encode, fit_within
from imagerag_sdk.index.scan import IMAGE_EXTENSIONS
from imagerag_sdk.runtrace import RunTrace

from .security import WebError, confined

router = APIRouter()
THUMB_SIZE = 256
NOSNIFF = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"}


@functools.lru_cache(maxsize=8192)
def file_url(kind: str, folder: str, relpath: str, size: int = THUMB_SIZE) -> tuple[str, str]:
    """(file URL, thumbnail URL) of ``relpath`` in corpus or run ``folder`` (cached: every search
    answer names a dozen)."""
    tail = f"{quote(folder, safe='')}/{quote(relpath)}"
    return f"/files/{kind}/{tail}", f"/thumbs/{kind}/{tail}?size={size}"


def _corpus_file(request: Request, corpus: str, relpath: str) -> Path:
    from .app import state

    found = state(request).corpora.by_name.get(corpus)
    if found is None or found.root is None:
        raise WebError(404, f"no corpus '{corpus}' here: /api/corpus lists them")
    path = confined(found.root, relpath)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise WebError(404, "only image files of a corpus are served")
    return path


def _run_file(request: Request, run_id: str, relpath: str) -> Path:
    from .app import state

    return confined(state(request).runs_dir, f"{_run_id(run_id)}/{relpath}")


def _run_id(run_id: str) -> str:
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or "\x00" in run_id:
        raise WebError(400, "bad run id: use an id from /api/runs")
    return run_id


@router.get("/files/corpus/{corpus}/{relpath:path}", include_in_schema=True)
def corpus_file(corpus: str, relpath: str, request: Request) -> FileResponse:
    """An image of a corpus (path relative to its root)."""
    return FileResponse(_corpus_file(request, corpus, relpath), headers=NOSNIFF)


@router.get("/files/runs/{run_id}/{relpath:path}")
def run_file(run_id: str, relpath: str, request: Request) -> FileResponse:
    """A file of a run folder (report.html, images, trace.json)."""
    return FileResponse(_run_file(request, run_id, relpath), headers=NOSNIFF)


@router.get("/thumbs/corpus/{corpus}/{relpath:path}")
def corpus_thumb(corpus: str, relpath: str, request: Request,
                 size: Annotated[int, Query(ge=16, le=1024)] = THUMB_SIZE) -> Response:
    """A JPEG thumbnail (longer side ``size``) of a corpus image."""
    return _thumb(_corpus_file(request, corpus, relpath), size)


@router.get("/thumbs/runs/{run_id}/{relpath:path}")
def run_thumb(run_id: str, relpath: str, request: Request,
              size: Annotated[int, Query(ge=16, le=1024)] = THUMB_SIZE) -> Response:
    """A JPEG thumbnail (longer side ``size``) of an image in a run folder."""
    return _thumb(_run_file(request, run_id, relpath), size)


def _thumb(path: Path, size: int) -> Response:
    st = path.stat()
    return Response(_thumbnail(str(path), st.st_mtime_ns, st.st_size, size), media_type="image/jpeg",
                    headers=NOSNIFF)


@functools.lru_cache(maxsize=2048)
def _thumbnail(path: str, mtime_ns: int, size_bytes: int, side: int) -> bytes:
    """Thumbnail bytes, cached per (file, modification, size)."""
    try:
        img = decode_rgb(Path(path).read_bytes(), name=os.path.basename(path), max_pixels=MAX_PIXELS,
                         draft=(side, side))
    except BadImageError as exc:
        raise WebError(415, f"{exc.message}: no thumbnail") from exc
    return encode(fit_within(img, side), fmt="JPEG", quality=85)


# -- runs ----------------------------------------------------------------------------------------------
def _trace(runs_dir: Path, run_id: str) -> RunTrace | None:
    path = runs_dir / run_id / "trace.json"
    if not path.is_file():
        return None
    return RunTrace.load(path)


def _image_url(runs_dir: Path, run_id: str, name: str | None) -> str | None:
    if not name or not (runs_dir / run_id / name).is_file():
        return None
    return file_url("runs", run_id, name)[0]


def run_summary(runs_dir: Path, run_id: str) -> dict[str, Any] | None:
    """RUN_SUMMARY of a run folder; ``None`` for a folder without ``trace.json`` (not a run).
    Cached while its trace.json and final image are unchanged (a listing reads no unchanged trace)."""
    folder = runs_dir / run_id
    stamps = tuple(_stamp(folder / name) for name in ("trace.json", "final.png", "initial.png"))
    return _summary(runs_dir, run_id, stamps)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4096)
def _summary(runs_dir: Path, run_id: str, stamps: tuple[tuple[int, int] | None, ...]) -> dict[str, Any] | None:
    try:
        trace = _trace(runs_dir, run_id)
    except ConfigError as exc:  # a broken trace is listed, with why, rather than hidden
        return {"id": run_id, "prompt": "", "status": "unreadable", "mode": None, "created": None, "thumb": None,
                "error": exc.message}
    if trace is None:
        return None
    shown = next((n for n in (trace.final_image, "final.png", "initial.png")
                  if n and (runs_dir / run_id / n).is_file()), None)
    return {"id": run_id, "prompt": trace.prompt, "status": trace.status, "mode": trace.mode,
            "created": trace.started_at, "thumb": file_url("runs", run_id, shown)[1] if shown else None}


def run_detail(runs_dir: Path, run_id: str) -> dict[str, Any]:
    """The redacted trace of a run and the URLs of its files."""
    trace = _trace(runs_dir, _run_id(run_id))
    if trace is None:
        raise WebError(404, f"no run '{run_id}': /api/runs lists them")
    copies = [u.copied_to for u in trace.user_images] + [p.copied_to for p in trace.picked]
    copies += [u.copied_to for rnd in trace.rounds for u in rnd.used]
    return {"id": run_id, "trace": trace.to_dict(),
            "files": {"initial": _image_url(runs_dir, run_id, "initial.png"),
                      "final": _image_url(runs_dir, run_id, trace.final_image),
                      "report": _image_url(runs_dir, run_id, "report.html"),
                      "references": [u for u in (_image_url(runs_dir, run_id, c) for c in copies) if u]}}
