"""How an ingest run shares the CPUs between its decode threads and the model's torch threads.

The model runs on the calling thread with torch's intra-op threads; decoding, hashing and
preprocessing run in worker threads beside it. A big model (ViT-B/32 on a CPU) needs every core
and leaves the decoders idle most of the time; a tiny one finishes a batch in a millisecond, and
then torch's extra threads only get in the decoders' way (they spin-wait, and a batch of small
ops stalls whenever one of its threads is descheduled). So before the first batch the model is
probed on one thread, on 1 and then up to 4 of that batch's rows (CPU time, which the machine's
load does not inflate the way it does wall time); when one thread keeps up with the decoders
(:func:`one_thread_keeps_up`), the run's model calls use one torch thread, otherwise torch's own
setting. What torch was set to is restored when the run ends. Only for embedders that declare
:attr:`~imagerag_sdk.roles.Embedder.uses_torch_threads`, and when torch is set to more than one
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import devices

PROBE_ROWS = 4
"""The second probe's batch size (the first is one row): the per-row cost is their difference."""


def one_thread_keeps_up(cpu_one_row: float, cpu_rows: float, rows: int, decode_cpu: float,
                        batch_size: int, threads: int) -> bool:
    """Whether the model on one thread stays off the critical path of a run.

    The model's CPU time for a batch on one thread is extrapolated from a 1-row and a
    ``rows``-row probe (a fixed cost per call plus a cost per row); ``decode_cpu`` is the CPU time
    of decoding and preprocessing one image. With one thread for the model, the other
    ``threads - 1`` cores decode, and every core stays busy as long as
    ``model_batch × (threads − 1) ≤ decode_batch``; past that, the model is the bottleneck and
    gets all ``threads``."""
    per_row = max(0.0, cpu_rows - cpu_one_row) / max(1, rows - 1)
    model_batch = cpu_one_row + (batch_size - 1) * per_row
    return model_batch * (threads - 1) <= decode_cpu * batch_size


class ModelThreads:
    """The torch thread count of one ingest run's model calls: probed once, restored at the end."""

    def __init__(self, batch_size: int, *, enabled: bool = True) -> None:
        self.batch_size = batch_size
        self.before = devices.torch_threads() if enabled else None
        """torch's setting when the run started (None: torch is not imported)."""
        self.threads = self.before
        """What the run's model calls use (None: torch not involved)."""
        self.probed = self.before is None or self.before < 2
        self.probe_seconds: tuple[float, float] = (0.0, 0.0)

    def probe(self, embed: Callable[[Sequence[Any]], Any], payloads: Sequence[Any],
              decode_cpu: float) -> None:
        """Decide once, from the first batch's ``payloads`` (``embed`` runs the model on some of
        them; its rows are discarded). An exception propagates as the batch's own would."""
        if self.probed or len(payloads) < 2 or self.before is None:
            return
        self.probed = True
        rows = min(PROBE_ROWS, len(payloads))
        devices.set_torch_threads(1)
        try:
            self.probe_seconds = (_cpu(embed, payloads[:1]), _cpu(embed, payloads[:rows]))
            light = one_thread_keeps_up(*self.probe_seconds, rows, decode_cpu, self.batch_size, self.before)
            self.threads = 1 if light else self.before
        finally:
            devices.set_torch_threads(self.threads if self.threads is not None else self.before)

    def restore(self) -> None:
        if self.before is not None and devices.torch_threads() != self.before:
            devices.set_torch_threads(self.before)


def _cpu(embed: Callable[[Sequence[Any]], Any], payloads: Sequence[Any]) -> float:
    t0 = time.thread_time()
    embed(payloads)
    return time.thread_time() - t0
