"""The torch thread count of an ingest run's model calls, for a model that is the bottleneck: torch's
setting or one thread, chosen from the batches' own wall times. Timings are injected (the module's
clocks, or :class:`ThreadChoice` fed directly): nothing here depends on how fast this machine is."""

from __future__ import annotations

import numpy as np
import pytest

from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusStore, ingest, threads
from imagerag_sdk.index.threads import RECHECK, ThreadChoice
from imagerag_sdk.testing.fakes import FakeEmbedder

ONE_CPU = 0.10
"""One thread's CPU seconds per row, in these tests."""


def _run(choice: ThreadChoice, per_row: dict[int, float], batches: int, rows: int = 32) -> list[int]:
    """Feed ``batches`` batches whose wall seconds per row are ``per_row[threads]``; the counts used."""
    for _ in range(batches):
        n = choice.next()
        choice.record(per_row[n] * rows, (ONE_CPU if n == 1 else ONE_CPU / 2) * rows, rows)
    return choice.used


def test_quiet_machine_never_tries_one_thread():
    # two threads at 0.55× one thread's CPU time per row: one thread cannot be faster
    choice = ThreadChoice(2, ONE_CPU)
    assert _run(choice, {2: 0.55 * ONE_CPU, 1: ONE_CPU}, 40) == [2] * 40


def test_loaded_machine_switches_to_one_thread_and_rechecks_less_often():
    # two threads slower than one (the cores are shared): tried on the second batch, kept; torch's
    # setting is tried again after RECHECK batches, then after twice as many each time it loses
    choice = ThreadChoice(2, ONE_CPU)
    used = _run(choice, {2: 1.4 * ONE_CPU, 1: 1.05 * ONE_CPU}, 2 + RECHECK + 1 + 2 * RECHECK + 1 + 4 * RECHECK)
    assert used[:2] == [2, 1]
    trials = [i for i, n in enumerate(used) if n == 2][1:]
    assert trials == [2 + RECHECK, 2 + RECHECK + 1 + 2 * RECHECK]
    assert choice.kept == 1 and choice.wait == 4 * RECHECK


def test_one_thread_that_loses_its_trial_is_tried_again_later():
    # torch's setting over one thread's CPU time (so one thread might win), but one thread is slower
    choice = ThreadChoice(2, ONE_CPU)
    used = _run(choice, {2: 0.9 * ONE_CPU, 1: 1.3 * ONE_CPU}, 2 + 2 * RECHECK + 1)
    assert used == [2, 1] + [2] * (2 * RECHECK) + [1]
    assert choice.kept == 2


def test_load_that_goes_away_brings_torch_threads_back():
    choice = ThreadChoice(2, ONE_CPU)
    _run(choice, {2: 1.5 * ONE_CPU, 1: 1.1 * ONE_CPU}, 3)
    assert choice.kept == 1
    used = _run(choice, {2: 0.5 * ONE_CPU, 1: 1.0 * ONE_CPU}, RECHECK + 10)
    assert used[2:] == [1] * RECHECK + [2] * 11, "the trial wins; then one thread is not worth a trial"
    assert choice.kept == 2


def test_one_thread_batches_replace_the_probed_cost():
    # the probe overstated one thread's cost; a batch on one thread measures the real one
    choice = ThreadChoice(2, 2 * ONE_CPU)
    assert _run(choice, {2: 1.9 * ONE_CPU, 1: 2.0 * ONE_CPU}, 2) == [2, 1]
    assert choice.one_thread_cpu_row == pytest.approx(ONE_CPU)
    assert choice.kept == 2 and choice.wait == 2 * RECHECK


def test_start_on_one_thread_then_try_torch_setting():
    # the cores were taken when the run started; they are free now: torch's setting wins its trial
    choice = ThreadChoice(2, ONE_CPU, start=1)
    used = _run(choice, {2: 0.55 * ONE_CPU, 1: 1.0 * ONE_CPU}, RECHECK + 6)
    assert used == [1] * RECHECK + [2] * 6 and choice.kept == 2


@pytest.mark.parametrize("load, cpus, taken", [(None, 2, False), (1.5, 2, False), (2.0, 2, True),
                                               (5.3, 2, True), (5.3, 16, False)])
def test_cores_taken(load, cpus, taken):
    assert threads.cores_taken(load, cpus) is taken


def test_recheck_interval_is_capped():
    choice = ThreadChoice(2, ONE_CPU, recheck=1, max_recheck=4)
    _run(choice, {2: 1.5 * ONE_CPU, 1: 1.0 * ONE_CPU}, 40)
    assert choice.wait == 4


class _Clock:
    """Fake wall and CPU clocks that only the fake model moves."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.load = 0.0


class _Shared(FakeEmbedder):
    """A heavy fast-path torch model whose batches cost, per row, ``wall[threads]`` injected wall
    seconds (and ``ONE_CPU`` of the calling thread's CPU on one thread); records (rows, threads)."""

    supports_fast_path = True
    uses_torch_threads = True
    wall: dict[int, float] = {}

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock
        self.calls: list[tuple[int, int]] = []

    def preprocess(self, img):
        return FakeEmbedder.embed_images(self, [img])[0]

    def embed_preprocessed(self, batch):
        import torch

        n = torch.get_num_threads()
        self.calls.append((len(batch), n))
        self.clock.wall += self.wall[n] * len(batch)
        self.clock.cpu += (ONE_CPU if n == 1 else ONE_CPU / n) * len(batch)
        return np.asarray(batch)


@pytest.fixture
def index_fake_clock(monkeypatch):
    torch = pytest.importorskip("torch")
    clock = _Clock()
    monkeypatch.setattr(threads, "load_average", lambda: clock.load)
    monkeypatch.setattr(threads, "wall_clock", lambda: clock.wall)
    monkeypatch.setattr(threads, "cpu_clock", lambda: clock.cpu)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield clock
    torch.set_num_threads(before)


@pytest.mark.parametrize("load, wall, batches", [
    (0.5, {2: 0.55 * ONE_CPU, 1: ONE_CPU}, [2, 2, 2, 2]),        # idle cores: torch's setting throughout
    (0.5, {2: 1.4 * ONE_CPU, 1: 1.05 * ONE_CPU}, [2, 1, 1, 1]),  # cores shared: one thread, after one batch
    (1e3, {2: 1.4 * ONE_CPU, 1: 1.05 * ONE_CPU}, [1, 1, 1, 1]),  # and the load average said so at the start
])
def test_ingest_picks_the_faster_count(tmp_path, index_make_images, index_fake_clock, load, wall, batches):
    import torch

    index_fake_clock.load = load
    root = tmp_path / "imgs"
    index_make_images(root, 32)
    emb = type("Shared", (_Shared,), {"wall": wall})(index_fake_clock)
    report = ingest(root, corpus="shared", embedder=emb, batch_size=8, workers=2)
    assert report.embedded == 32
    assert emb.calls[:2] == [(1, 1), (4, 1)], "probed on one thread: the model is the bottleneck"
    first, *rest = batches
    assert emb.calls[2:] == [(4, first)] + [(8, n) for n in rest], "the first batch keeps the probe's 4 rows"
    assert torch.get_num_threads() == 2, "torch's setting is restored"
    store = CorpusStore.open("shared")
    try:  # every row is its own file's vector, whatever count its batch ran on
        items = store.items()
        assert len(items) == 32
        for rel, item in items.items():
            want = FakeEmbedder().embed_images([load_rgb(root / rel)])[0]
            np.testing.assert_allclose(store.get_vectors([item.label])[0], want, atol=1e-6)
    finally:
        store.close()
