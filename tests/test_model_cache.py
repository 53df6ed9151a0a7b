"""The process-wide cache of loaded heavy objects (imagerag_sdk.model_cache)."""

from __future__ import annotations

import threading
import time

import pytest

from imagerag_sdk import model_cache


@pytest.fixture
def kind(request):
    """A kind of this test's own, forgotten afterwards (the cache is process-wide)."""
    name = f"test:{request.node.name}"
    model_cache.clear(name)
    yield name
    model_cache.clear(name)


def test_threads_racing_for_one_key_load_it_once(kind):
    calls: list[str] = []
    waiting = threading.Event()

    def slow_load():
        calls.append(threading.current_thread().name)
        assert waiting.wait(10)  # the other threads are about to ask for the same key
        time.sleep(0.05)  # let them reach the cache (the assertions hold however long this is)
        return object()

    results: list[object] = []

    def ask():
        waiting.set()
        results.append(model_cache.get_or_load(kind, ("weights", "cpu"), slow_load))

    threads = [threading.Thread(target=ask, name=f"t{i}") for i in range(6)]
    before = model_cache.load_count(kind)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and len(results) == 6
    assert all(r is results[0] for r in results)
    assert model_cache.load_count(kind) - before == 1
    assert model_cache.held(kind) == [(kind, ("weights", "cpu"))]


def test_other_keys_load_while_one_is_loading(kind):
    other_done = threading.Event()

    def waits_for_the_other():
        return other_done.wait(10)  # a single global lock would block the other key until timeout

    def other():
        model_cache.get_or_load(kind, "b", lambda: "b")
        other_done.set()

    helper = threading.Thread(target=other)

    def first():
        helper.start()
        return waits_for_the_other()

    assert model_cache.get_or_load(kind, "a", first) is True
    helper.join(30)
    assert model_cache.load_count(kind) == 2


def test_a_failed_load_caches_nothing_and_the_next_call_retries(kind):
    def broken():
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        model_cache.get_or_load(kind, "k", broken)
    assert model_cache.held(kind) == [] and model_cache.load_count(kind) == 0
    assert model_cache.get_or_load(kind, "k", lambda: 42) == 42
    assert model_cache.get_or_load(kind, "k", broken) == 42  # cached now: the loader is not called
    assert model_cache.load_count(kind) == 1


def test_counts_are_per_kind_and_clear_forgets_one_kind(kind):
    other = kind + ":other"
    model_cache.clear(other)
    try:
        before_all = model_cache.load_count()
        model_cache.get_or_load(kind, 1, lambda: "one")
        model_cache.get_or_load(kind, 2, lambda: "two")
        model_cache.get_or_load(other, 1, lambda: "other one")  # same key, other kind: its own entry
        assert model_cache.load_count(kind) == 2 and model_cache.load_count(other) == 1
        assert model_cache.load_count() - before_all == 3
        assert model_cache.held(kind) == [(kind, 1), (kind, 2)]
        model_cache.clear(kind)
        assert model_cache.held(kind) == [] and model_cache.held(other) == [(other, 1)]
        assert model_cache.load_count(kind) == 2  # counts are not reset: tests compare deltas
        assert model_cache.get_or_load(kind, 1, lambda: "reloaded") == "reloaded"
        assert model_cache.load_count(kind) == 3
    finally:
        model_cache.clear(other)
