"""The process-wide cache of loaded heavy objects: diffusers pipelines, transformers models.

A plugin's ``_load()`` asks :func:`get_or_load` for ``(kind, key)``, where ``kind`` is a short
name (by convention the component's registered name: ``"sdxl"``, ``"qwen"``) and ``key`` is every
load-time setting that identifies the loaded object (resolved weights, device, dtype …), never a
per-call setting. Two component instances that differ only in per-call settings (steps,
temperature, retries) therefore share one set of weights. The first caller of a key loads it
while later callers of that key wait; other keys load meanwhile. A load that raises caches
nothing, so the next caller tries again.

This is not the registry's cache of component *instances* (``imagerag_sdk.plugins``): that one
maps ``(role, name, options)`` to a cheap, unloaded component object and is forgotten with the
registry (``set_registry``); this one maps load settings to the weights themselves and lives
until :func:`clear`, so components built from another registry, or by hand, share them too.

Nothing heavy is imported here; :func:`clear` empties torch's CUDA cache only if torch is
already imported.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

_lock = threading.Lock()
"""Guards the three tables below; never held while a loader runs."""
_held: dict[tuple[str, Hashable], Any] = {}
_key_locks: dict[tuple[str, Hashable], threading.Lock] = {}
"""One lock per key ever asked for, held while that key loads (kept across :func:`clear`)."""
_loads: Counter[str] = Counter()


def get_or_load(kind: str, key: Hashable, load: Callable[[], T]) -> T:
    """The object cached under ``(kind, key)``; the first call runs ``load()`` and keeps what it
    returns. Threads asking for the same key at once load it once."""
    full = (kind, key)
    with _lock:
        if full in _held:
            return cast(T, _held[full])  # stored by this function as what load() returned
        key_lock = _key_locks.setdefault(full, threading.Lock())
    with key_lock:
        with _lock:
            if full in _held:  # loaded by the thread we waited for
                return cast(T, _held[full])
        value = load()
        with _lock:
            _held[full] = value
            _loads[kind] += 1
        return value


def load_count(kind: str | None = None) -> int:
    """How many loads really ran in this process (of ``kind``, or of every kind); :func:`clear`
    does not reset it, so tests compare it before and after."""
    with _lock:
        return _loads[kind] if kind is not None else sum(_loads.values())


def held(kind: str | None = None) -> list[tuple[str, Hashable]]:
    """The ``(kind, key)`` pairs cached now (of ``kind``, or all), oldest first."""
    with _lock:
        return [full for full in _held if kind is None or full[0] == kind]


def clear(kind: str | None = None) -> None:
    """Forget the cached objects (of ``kind``, or all); their memory is freed once no component
    holds them any more. Components already loaded keep what they hold."""
    with _lock:
        for full in [full for full in _held if kind is None or full[0] == kind]:
            del _held[full]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
