"""The process-wide pipeline cache: one loaded pipeline per (kind, weights, dtype, device, …).

Two generator instances that name the same weights share one pipeline, and both passes of the
ImageRAG loop (with and without references) run on it. ``LOADS`` counts how many pipelines were
really built, per kind, so tests (and curious users) can check that nothing loads twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

LOADS: Counter[str] = Counter()
"""Pipelines built in this process, by generator kind (``"sdxl"``, ``"omnigen"``, ``"flux"``)."""

_CACHE: dict[tuple[Hashable, ...], "LoadedPipeline"] = {}
_LOCK = threading.RLock()


@dataclass
class LoadedPipeline:
    """A loaded pipeline plus the parts derived from it (e.g. an image-conditioned FLUX pipeline
    made with ``from_pipe``). ``lock`` serialises calls: diffusers pipelines hold per-call state
    (the IP-Adapter scale, progress bars, offload hooks) and are not safe to call concurrently."""

    pipe: Any
    device: str
    dtype: str
    parts: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


def get_or_load(key: tuple[Hashable, ...], build: Callable[[], LoadedPipeline]) -> LoadedPipeline:
    """The cached pipeline for ``key`` (``key[0]`` is the kind), building it on first use."""
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = build()
            _CACHE[key] = entry
            LOADS[str(key[0])] += 1
        return entry


def load_count(kind: str | None = None) -> int:
    """How many pipelines were built in this process (of ``kind``, or of every kind)."""
    with _LOCK:
        return LOADS[kind] if kind is not None else sum(LOADS.values())


def cached_keys() -> list[tuple[Hashable, ...]]:
    with _LOCK:
        return list(_CACHE)


def clear() -> None:
    """Forget every cached pipeline (memory is freed once no generator holds one)."""
    import sys

    with _LOCK:
        _CACHE.clear()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
