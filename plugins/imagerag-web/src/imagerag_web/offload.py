"""Where an endpoint's blocking call runs: on the event loop while such calls are cheap and come
one at a time, else on the server's thread pool.

The hop to a pool thread and back costs a fast call 0.4–0.6 ms of CPU (two thread wake-ups and
GIL hand-overs; docs/benchmarks.md, "Web server"), so a call that is typically cheap runs on the
event loop, where it holds up the other requests only as long as it runs. Over its last
:data:`WINDOW` runs: the median took under :data:`INLINE_CPU_MS` of its thread's CPU time (the
work itself, whatever else the machine runs) and under :data:`INLINE_WALL_MS` of wall time (a call
that waits, on a remote service, a disk or a GPU, goes to the pool, where such waits overlap), and
none took over :data:`BLOCK_MAX_MS` of wall time. And no other such call is in flight: with
several at once (many clients) they go to the pool, where the parts that release the GIL (numpy,
a model) run side by side and the loop stays free for the other requests. A call first yields to
the loop once, so that the requests that arrived with it start (asyncio runs ready tasks in
order) and are counted. The first :data:`WINDOW` calls go to the pool. A running generation holds
up neither path: generations run on the job queue's workers.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
INLINE_CPU_MS = 5.0
"""A few requests' worth of the event loop's own work (uvicorn and FastAPI take ≈ 0.5–1 ms each)."""
INLINE_WALL_MS = 10.0
BLOCK_MAX_MS = 50.0
"""The longest a call on the event loop is expected to hold it (wall ms): one run over it sends the
next :data:`WINDOW` calls to the pool."""
WINDOW = 16


class Offload:
    """Runs a blocking call on the event loop or the thread pool, from what its last runs cost."""

    def __init__(self, cpu_ms: float = INLINE_CPU_MS, wall_ms: float = INLINE_WALL_MS,
                 block_max_ms: float = BLOCK_MAX_MS, window: int = WINDOW) -> None:
        self.cpu_ms, self.wall_ms, self.block_max_ms = cpu_ms, wall_ms, block_max_ms
        self.recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=window)
        """(thread CPU ms, wall ms) of the last runs (appended on the event loop only)."""
        self.in_flight = 0
        """Calls begun and not ended (changed on the event loop only)."""

    def inline(self) -> bool:
        """Whether the next call runs on the event loop."""
        n = len(self.recent)
        if n < (self.recent.maxlen or 0):
            return False
        cpu = sorted(c for c, _ in self.recent)
        wall = sorted(w for _, w in self.recent)
        return cpu[n // 2] < self.cpu_ms and wall[n // 2] < self.wall_ms and wall[-1] <= self.block_max_ms

    async def run(self, call: Callable[[], T]) -> T:
        took: list[tuple[float, float]] = []

        def timed() -> T:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return call()
            finally:
                took.append(((time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))

        self.in_flight += 1
        try:
            await anyio.sleep(0)  # the requests that arrived with this one start, and count themselves
            alone = self.in_flight == 1
            return timed() if alone and self.inline() else await run_in_threadpool(timed)
        finally:
            self.in_flight -= 1
            if took:  # not when cancelled before the pool started it
                self.recent.append(took[0])
