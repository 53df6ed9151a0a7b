"""Walking a corpus folder: image files, their sidecars, and what was skipped and why.

Paths are kept relative to the corpus root (POSIX separators). Symbolic links are never followed
out of the root: a link whose target lies outside is reported and skipped; a link to a folder
inside the root is skipped (its target is scanned anyway), so nothing is visited twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..images import MAX_PIXELS, BadImageError, decode_rgb
from .confine import inside

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SIDECAR_EXTENSIONS = (".txt", ".json")
SIDECAR_FIELDS = ("caption", "license", "source")


Stat = tuple[str, int, int, str]
"""What a re-run compares a file by: (relative path, size, mtime_ns, sidecar signature)."""


def sidecar_signature(sidecars: Iterable[tuple[str, int, int]]) -> str:
    """The signature of an image's sidecars, ``path:size:mtime_ns`` of each, joined by ``;``."""
    return ";".join(f"{p}:{s}:{m}" for p, s, m in sidecars)


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Relative to the corpus root."""
    size: int
    mtime_ns: int
    sidecars: tuple[tuple[str, int, int], ...] = ()
    """(relative path, size, mtime_ns) of each sidecar file found next to the image."""

    @property
    def sidecar_sig(self) -> str:
        return sidecar_signature(self.sidecars)


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str
    kind: str = "bad"
    """bad (cannot be decoded) | skipped (not indexed on purpose: links out of the root…) | sidecar"""

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "kind": self.kind}


@dataclass
class ScanResult:
    root: Path
    stats: list[Stat] = field(default_factory=list)
    """One per image file, in the order of the walk (each folder's files sorted, the folders
    visited by name: nearly sorted by path, not quite, as ``a-b/`` sorts before ``a/``): what a
    re-run compares."""
    sidecars: dict[str, tuple[tuple[str, int, int], ...]] = field(default_factory=dict)
    """The sidecars of the images that have any, by the image's relative path."""
    skipped: list[Problem] = field(default_factory=list)

    def entry(self, stat: Stat) -> FileEntry:
        """The file entry of one of :attr:`stats`."""
        return FileEntry(stat[0], stat[1], stat[2], self.sidecars.get(stat[0], ()))

    @property
    def files(self) -> list[FileEntry]:
        """Every image file, sorted by path (one object each: a re-run that compares
        :attr:`stats` builds entries only for the files it must read)."""
        return [self.entry(s) for s in sorted(self.stats)]


def normalize_extensions(exts: Iterable[str] | None) -> tuple[str, ...]:
    if not exts:
        return IMAGE_EXTENSIONS
    out = []
    for e in exts:
        for part in str(e).split(","):
            part = part.strip().lower()
            if part:
                out.append(part if part.startswith(".") else "." + part)
    return tuple(out)


def _extension(name: str) -> str:
    """``os.path.splitext(name)[1].lower()``, without its cost for the common name."""
    dot = name.rfind(".")
    if dot <= 0:
        return ""
    if name[0] == ".":  # leading dots do not start an extension
        return os.path.splitext(name)[1].lower()
    return name[dot:].lower()


def scan(root: str | os.PathLike, extensions: Iterable[str] | None = None) -> ScanResult:
    """Every image file under ``root`` (recursively), in walk order (``files``: sorted by path),
    plus what was skipped.

    One ``lstat`` per image or sidecar file (folders are told apart by the listing's entry
    types); a folder's sidecars are matched to its images as soon as it is listed (a sidecar
    lies next to its image)."""
    root_path = Path(root).expanduser().resolve()
    root_real = os.path.realpath(root_path)
    exts = frozenset(normalize_extensions(extensions))
    side_exts = frozenset(SIDECAR_EXTENSIONS) - exts
    wanted = exts | side_exts
    result = ScanResult(root_path)
    stats = result.stats
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        prefix = rel_dir + "/" if rel_dir else ""
        try:
            with os.scandir(os.path.join(root_real, rel_dir) if rel_dir else root_real) as listing:
                entries = list(listing)
        except OSError as exc:
            result.skipped.append(Problem(rel_dir or ".", f"cannot list folder: {exc.strerror or exc}",
                                          "skipped"))
            continue
        images: list[Stat] = []
        sidecars: dict[str, tuple[int, int]] = {}
        folders: list[str] = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(prefix + name)
                    continue
                dot = name.rfind(".")
                ext = name[dot:].lower() if dot > 0 and name[0] != "." else _extension(name)
                if entry.is_file(follow_symlinks=False):  # a file, not a link to one
                    if ext not in wanted:
                        continue
                    st = entry.stat(follow_symlinks=False)
                elif entry.is_symlink():
                    linked = _followed(entry, prefix + name, ext, exts, root_real, result.skipped)
                    if linked is None:
                        continue
                    st = linked
                else:
                    continue
            except OSError as exc:
                result.skipped.append(Problem(prefix + name, f"cannot stat: {exc.strerror or exc}", "skipped"))
                continue
            if ext in exts:
                images.append((prefix + name, st.st_size, st.st_mtime_ns, ""))
            elif ext in side_exts:
                sidecars[prefix + name] = (st.st_size, st.st_mtime_ns)
        if sidecars:
            for i, (rel, size, mtime_ns, _) in enumerate(images):
                found = tuple((cand, *sidecars[cand]) for cand in sidecar_candidates(rel) if cand in sidecars)
                if found:
                    result.sidecars[rel] = found
                    images[i] = (rel, size, mtime_ns, sidecar_signature(found))
        images.sort()
        stats += images
        folders.sort(reverse=True)  # visited in order: the walk comes out nearly sorted by path
        stack += folders
    return result


def _followed(entry: os.DirEntry, rel: str, ext: str, exts: frozenset[str], root_real: str,
              skipped: list[Problem]) -> os.stat_result | None:
    """The ``stat`` of the file a symbolic link inside the root leads to; ``None`` when the link
    is skipped (out of the root or broken: reported; to a folder: scanned under its real name)."""
    target = os.path.realpath(entry.path)
    if not inside(target, root_real):
        if os.path.isdir(target) or ext in exts:
            skipped.append(Problem(rel, f"symbolic link to {target}, outside the corpus root", "skipped"))
        return None
    if not os.path.exists(target):
        skipped.append(Problem(rel, "broken symbolic link", "skipped"))
        return None
    if os.path.isdir(target):
        return None
    return os.stat(entry.path)


def sidecar_candidates(rel: str) -> list[str]:
    """``photo.jpg`` → ``photo.txt``, ``photo.json``, ``photo.jpg.txt``, ``photo.jpg.json``."""
    stem = os.path.splitext(rel)[0]
    return [stem + ".txt", stem + ".json", rel + ".txt", rel + ".json"]


def read_sidecars(root: Path, entry: FileEntry) -> tuple[dict[str, Any], list[str]]:
    """Fields from the sidecars (JSON keys win over ``.txt`` captions) and any problems reading them."""
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for rel, _, _ in entry.sidecars:
        path = root / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{rel}: {exc}")
            continue
        if rel.endswith(".txt"):
            fields.setdefault("caption", text.strip())
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{rel}: invalid JSON ({exc.msg} at line {exc.lineno})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{rel}: expected a JSON object")
            continue
        for key, value in data.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                fields[str(key)] = value
            else:
                fields[str(key)] = json.dumps(value)
    for key in SIDECAR_FIELDS:
        if key in fields and fields[key] is not None:
            fields[key] = str(fields[key])
    return fields, problems


def read_and_hash(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, name: str, max_pixels: int | None = MAX_PIXELS,
                 min_side: int | None = None) -> Image.Image:
    """:func:`imagerag_sdk.images.decode_rgb` (upright RGB, bombs refused, reasons for failures).

    With ``min_side``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both
    sides at least ``min_side`` pixels — several times less work when the model only needs
    224 px. Anything unusual about the file goes through ``decode_rgb`` for its checks and messages.
    """
    if not data:
        raise BadImageError(f"{name} is empty (0 bytes)")
    if min_side and data[:3] == b"\xff\xd8\xff":  # JPEG: decode at a reduced scale covering min_side
        return decode_rgb(data, name=name, max_pixels=max_pixels, draft=(min_side, min_side))
    return decode_rgb(data, name=name, max_pixels=max_pixels)
