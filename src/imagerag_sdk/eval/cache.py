"""Resume state of an evaluation: one small JSON file per finished unit, written atomically.

``OUT/cache/gen/<system hash>/<item>-s<seed>-<prompt hash>.json`` records a finished generation
(its run folder and what the critic did); ``OUT/cache/score/<scorer hash>/<system hash>/<the same
name>-<concept and real images hash>.json`` the scores of its initial and final images. A file exists only
complete (written to a temporary name, then renamed over the target), so a process killed at any
moment leaves each unit either done or not started; a rerun of the same command skips what has a
file. Failures are not cached: a rerun tries them again.

The files are not fsynced (``atomic.write_text`` would be: two disk flushes per file, which cost
more than a tiny scorer's forward pass; docs/benchmarks.md). A power cut can lose the last ones or
leave one empty: :meth:`Cache.read` takes a file that is not a JSON object for "not done", so that
unit is redone, never wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import temp_path

KEY_CHARS = 16
"""Hex characters of a hash used in folder names."""


def unit_name(item_id: str, prompt: str, seed: int) -> str:
    """The file name of a unit: the item, its seed and a hash of its prompt (an edited prompt is new)."""
    return f"{item_id}-s{seed}-{hashlib.sha256(prompt.encode()).hexdigest()[:8]}.json"


def score_name(unit: str, concept: str, real_images: Sequence[str]) -> str:
    """The file name of a unit's scores: also keyed by its concept and real images (a changed
    real-images folder is scored again)."""
    digest = hashlib.sha256(json.dumps([concept, list(real_images)]).encode()).hexdigest()[:8]
    return unit.removesuffix(".json") + f"-{digest}.json"


class Cache:
    def __init__(self, out: Path) -> None:
        self.root = out / "cache"

    def generation_path(self, system_hash: str, unit: str) -> Path:
        return self.root / "gen" / system_hash[:KEY_CHARS] / unit

    def score_path(self, scorer_hash: str, system_hash: str, unit: str) -> Path:
        return self.root / "score" / scorer_hash[:KEY_CHARS] / system_hash[:KEY_CHARS] / unit

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """The unit's record, or ``None`` when it is not done."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:  # not JSON (written by hand, a disk fault): the unit is redone and rewritten
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def write(path: Path, data: dict[str, Any]) -> None:
        """Write the unit's record whole or not at all (a temporary file renamed over ``path``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        try:
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
