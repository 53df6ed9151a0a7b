"""Decoding the scored units' images ahead: a small thread pool works on the next batch while the
scorer scores the current one (Pillow releases the GIL while it decodes), several units at a time.

Each unit's work is one :class:`~concurrent.futures.Future`; its exception (an unreadable image)
comes out of ``result()`` for that unit only. Leaving the ``with`` block, normally or on an
exception (Ctrl-C), cancels what has not started and waits for what has: no thread outlives it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

from PIL import Image

U = TypeVar("U")
R = TypeVar("R")

MAX_WORKERS = 4


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


class Prefetch(Generic[U, R]):
    """``work(unit)`` for each unit of each batch in a bounded pool, one batch ahead."""

    def __init__(self, work: Callable[[U], R], workers: int | None = None) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(max_workers=workers or default_workers(),
                                        thread_name_prefix="imagerag-eval-decode")

    def __enter__(self) -> Prefetch[U, R]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def batches(self, batches: Sequence[Sequence[U]]) -> Iterator[tuple[Sequence[U], list[Future[R]]]]:
        """Each batch with its units' futures, in order; the next batch is submitted before this
        one is handed out, so it is worked on while the caller uses this one."""
        ahead = [self._submit(batches[0])] if batches else []
        for i, batch in enumerate(batches):
            if i + 1 < len(batches):
                ahead.append(self._submit(batches[i + 1]))
            yield batch, ahead.pop(0)

    def _submit(self, batch: Sequence[U]) -> list[Future[R]]:
        return [self._pool.submit(self._work, u) for u in batch]


def decode_pair(initial: Path, final: Path) -> list[Image.Image]:
    """A unit's initial and final image, each file read once; one image when both are the same file
    content (the critic said the initial image matches: it is decoded and scored once)."""
    from .. import images

    first, last = images.read_image(initial), images.read_image(final)
    if first == last:
        return [images.decode_rgb(first, name=str(initial))]
    return [images.decode_rgb(first, name=str(initial)), images.decode_rgb(last, name=str(final))]
