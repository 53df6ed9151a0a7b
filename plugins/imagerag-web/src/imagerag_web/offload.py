"""Where an endpoint's blocking call runs: on the event loop while such calls are fast, else on the
server's thread pool.

The hop to a pool thread and back costs a fast call about half a millisecond of CPU (two thread
wake-ups and GIL hand-overs; docs/benchmarks.md, "Web server"), so a call that is typically fast
runs on the event loop, where it holds up the other requests only as long as it runs: the median
of its last :data:`WINDOW` runs under :data:`INLINE_MS` and none of them over :data:`BLOCK_MAX_MS`
(wall time). Otherwise it runs on the pool, where it blocks nothing, until that holds again; the
first :data:`WINDOW` calls go to the pool. A running generation holds up neither path:
generations run on the job queue's workers.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
INLINE_MS = 2.0
"""A call runs on the event loop only while the median of its last :data:`WINDOW` runs took less (wall ms)."""
BLOCK_MAX_MS = 20.0
"""… and none of them took longer (wall ms): the longest a call on the event loop is expected to hold it."""
WINDOW = 16


class Offload:
    """Runs a blocking call on the event loop or the thread pool, from how long its last runs took."""

    def __init__(self, inline_ms: float = INLINE_MS, block_max_ms: float = BLOCK_MAX_MS, window: int = WINDOW) -> None:
        self.inline_ms, self.block_max_ms = inline_ms, block_max_ms
        self.recent: collections.deque[float] = collections.deque(maxlen=window)
        """Wall ms of the last runs (appended on the event loop only)."""

    def inline(self) -> bool:
        """Whether the next call runs on the event loop."""
        if len(self.recent) < (self.recent.maxlen or 0):
            return False
        ms = sorted(self.recent)
        return ms[len(ms) // 2] < self.inline_ms and ms[-1] <= self.block_max_ms

    async def run(self, call: Callable[[], T]) -> T:
        if self.inline():
            start = time.perf_counter()
            try:
                return call()
            finally:
                self.recent.append((time.perf_counter() - start) * 1000)
        took: list[float] = []

        def timed() -> T:
            start = time.perf_counter()
            try:
                return call()
            finally:
                took.append((time.perf_counter() - start) * 1000)

        try:
            return await run_in_threadpool(timed)
        finally:
            if took:  # not when cancelled before the thread started it
                self.recent.append(took[0])
