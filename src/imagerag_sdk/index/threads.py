"""How an ingest run shares the CPUs between its decode threads and the model's torch threads.

The model runs on the calling thread with torch's intra-op threads; decoding, hashing and
preprocessing run in worker threads beside it. A big model (ViT-B/32 on a CPU) needs every core
and leaves the decoders idle most of the time; a tiny one finishes a batch in a millisecond, and
then torch's extra threads only get in the decoders' way (they spin-wait, and a batch of small
ops stalls whenever one of its threads is descheduled).

So before the first batch the model is probed on one thread, on 1 and then up to 4 of that
batch's rows (CPU time, which the machine's load does not inflate the way it does wall time); the
batch keeps the rows of the second probe and embeds only the rest.
When one thread keeps up with the decoders (:func:`one_thread_keeps_up`), the run's model calls
use one torch thread: more threads could only take CPU from the decoders.

Otherwise the model is the bottleneck, and which thread count is faster depends on the machine's
load, not on the model: on idle cores torch's setting wins, on cores other processes share one
thread can beat it (every op of a batch ends in a barrier that waits for the slowest, often
descheduled, thread). :class:`ThreadChoice` decides that from the wall time of the run's own
batches. It starts on torch's setting, or on one thread when the load average already reaches the
number of CPUs (other processes hold the cores: :func:`cores_taken`). On torch's setting, one
thread is tried on a batch only when torch's setting took longer per row than one thread's CPU
time (the least one thread's wall time can be: on a quiet machine it is never tried); the faster
is kept. The other count is tried again now and then
(after :data:`RECHECK` batches, doubling up to :data:`MAX_RECHECK` each time the kept one stays
faster), so the run follows a load that changes. What torch was set to is restored when the run
ends. Only for embedders that declare :attr:`~imagerag_sdk.roles.Embedder.uses_torch_threads`,
and when torch is set to more than one thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .. import devices

PROBE_ROWS = 4
"""The second probe's batch size (the first is one row): the per-row cost is their difference."""

RECHECK = 4
"""Batches on the kept thread count before the other one is tried again (doubles while it loses)."""
MAX_RECHECK = 64
MARGIN = 0.8
"""One thread is tried when torch's setting takes longer per row than this share of one thread's
CPU time per row (below 1: the probe's per-row extrapolation can overstate a full batch's cost)."""

wall_clock: Callable[[], float] = time.perf_counter
cpu_clock: Callable[[], float] = time.thread_time
"""The clocks the batches are timed with (module attributes, so tests can inject the timings)."""


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cores_taken(load: float | None, cpus: int) -> bool:
    """Whether runnable processes already fill the ``cpus`` cores: torch's extra threads would
    queue behind them (the run's first batches then start on one thread)."""
    return load is not None and load >= cpus

T = TypeVar("T")


def one_thread_keeps_up(cpu_one_row: float, cpu_rows: float, rows: int, decode_cpu: float,
                        batch_size: int, threads: int) -> bool:
    """Whether the model on one thread stays off the critical path of a run.

    The model's CPU time for a batch on one thread is extrapolated from a 1-row and a
    ``rows``-row probe (a fixed cost per call plus a cost per row); ``decode_cpu`` is the CPU time
    of decoding and preprocessing one image. With one thread for the model, the other
    ``threads - 1`` cores decode, and every core stays busy as long as
    ``model_batch × (threads − 1) ≤ decode_batch``; past that, the model is the bottleneck and
    gets all ``threads``."""
    return one_thread_batch_cpu(cpu_one_row, cpu_rows, rows, batch_size) * (threads - 1) <= decode_cpu * batch_size


def one_thread_batch_cpu(cpu_one_row: float, cpu_rows: float, rows: int, batch_size: int) -> float:
    """A ``batch_size``-row batch's CPU time on one thread, from a 1-row and a ``rows``-row probe."""
    per_row = max(0.0, cpu_rows - cpu_one_row) / max(1, rows - 1)
    return cpu_one_row + (batch_size - 1) * per_row


class ThreadChoice:
    """Torch's setting (``many``) or one thread, batch by batch, for a model that is the bottleneck.

    Pure bookkeeping, no clock: :meth:`next` says the thread count of the coming batch,
    :meth:`record` takes what that batch cost (wall and calling-thread CPU seconds, rows).
    ``one_thread_cpu_row``: one thread's CPU seconds per row, as probed (replaced by what a batch on
    one thread measures); ``start``: the count of the first batches (``many`` unless given)."""

    def __init__(self, many: int, one_thread_cpu_row: float, *, start: int | None = None,
                 recheck: int = RECHECK, max_recheck: int = MAX_RECHECK) -> None:
        self.many = many
        self.kept = start or many
        """The count batches use between trials."""
        self.one_thread_cpu_row = one_thread_cpu_row
        self.per_row: dict[int, float] = {}
        """The latest wall seconds per row measured at each count."""
        self.recheck = recheck
        self.max_recheck = max_recheck
        self.wait = recheck
        """Batches on the kept count before the other is tried again."""
        self.since = 0
        self.trying: int | None = None
        self.used: list[int] = []
        """The count of every recorded batch, in order."""

    def next(self) -> int:
        """The thread count for the coming batch: the kept one, or the other on trial."""
        self.trying = None
        if self.kept in self.per_row:
            if self.kept == self.many:
                worth = self.per_row[self.many] > MARGIN * self.one_thread_cpu_row
                due = 1 not in self.per_row or self.since >= self.wait
                self.trying = 1 if worth and due else None
            elif self.since >= self.wait:
                self.trying = self.many
        return self.trying or self.kept

    def record(self, wall: float, cpu: float, rows: int) -> None:
        """What the batch :meth:`next` was asked for cost; a trial keeps the faster count."""
        threads = self.trying or self.kept
        self.used.append(threads)
        per_row = wall / max(1, rows)
        self.per_row[threads] = per_row
        if threads == 1:
            self.one_thread_cpu_row = cpu / max(1, rows)
        if self.trying is None:
            self.since += 1
            return
        self.trying, self.since = None, 0
        if per_row < self.per_row[self.kept]:
            self.kept, self.wait = threads, self.recheck
        else:
            self.wait = min(2 * self.wait, self.max_recheck)


class ModelThreads:
    """The torch thread count of one ingest run's model calls: probed once, chosen per batch,
    restored at the end."""

    def __init__(self, batch_size: int, *, enabled: bool = True) -> None:
        self.batch_size = batch_size
        self.before = devices.torch_threads() if enabled else None
        """torch's setting when the run started (None: torch is not imported)."""
        self.threads = self.before
        """What the run's model calls use (None: torch not involved); for a heavy model, what the
        latest batch used."""
        self.probed = self.before is None or self.before < 2
        self.probe_seconds: tuple[float, float] = (0.0, 0.0)
        self.choice: ThreadChoice | None = None
        """Set when the probe finds the model the bottleneck: the per-batch choice."""

    def probe(self, embed: Callable[[Sequence[Any]], T], payloads: Sequence[Any],
              decode_cpu: float) -> T | None:
        """Decide once, from the first batch's ``payloads`` (``embed`` runs the model on some of
        them). Returns the rows of the larger probe, the embedding of ``payloads[:n]`` for the
        batch to keep (None when nothing was probed); the one-row probe's row is discarded. An
        exception propagates as the batch's own would."""
        if self.probed or len(payloads) < 2 or self.before is None:
            return None
        self.probed = True
        rows = min(PROBE_ROWS, len(payloads))
        devices.set_torch_threads(1)
        try:
            one_row, _ = _cpu(embed, payloads[:1])
            some_rows, head = _cpu(embed, payloads[:rows])
            self.probe_seconds = (one_row, some_rows)
            light = one_thread_keeps_up(one_row, some_rows, rows, decode_cpu, self.batch_size, self.before)
            self.threads = 1 if light else self.before
            if not light:
                batch = one_thread_batch_cpu(one_row, some_rows, rows, self.batch_size)
                start = 1 if cores_taken(load_average(), os.cpu_count() or 1) else self.before
                self.choice = ThreadChoice(self.before, batch / self.batch_size, start=start)
        finally:
            devices.set_torch_threads(self.threads if self.threads is not None else self.before)
        return head

    def run(self, call: Callable[[], T], rows: int) -> T:
        """One batch of ``rows``: on the count :attr:`choice` picks, timed for it (batches under
        half the batch size are run on the kept count and not timed: their fixed cost weighs more)."""
        choice = self.choice
        if choice is None:
            return call()
        timed = 2 * rows >= self.batch_size
        threads = choice.next() if timed else choice.kept
        if threads != self.threads:
            devices.set_torch_threads(threads)
            self.threads = threads
        wall, cpu = wall_clock(), cpu_clock()
        out = call()
        if timed:
            choice.record(wall_clock() - wall, cpu_clock() - cpu, rows)
        return out

    def restore(self) -> None:
        if self.before is not None and devices.torch_threads() != self.before:
            devices.set_torch_threads(self.before)


def _cpu(embed: Callable[[Sequence[Any]], T], payloads: Sequence[Any]) -> tuple[float, T]:
    t0 = cpu_clock()
    out = embed(payloads)
    return cpu_clock() - t0, out
