"""The writer lock of a corpus: one writer at a time, never blocking, never taken by readers,
released on close (from any thread) and by the OS when the writer dies; no ``fcntl`` needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from imagerag_sdk.errors import CorpusError
from imagerag_sdk.index import CorpusStore

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from imagerag_sdk.index import CorpusStore

    store = CorpusStore.open(index_dir=sys.argv[1], write=True)
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_killed_writer_leaves_the_lock_free(tmp_path):
    folder = tmp_path / "corpus"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read() if proc.poll() is not None else line
        with pytest.raises(CorpusError, match="being written by another process") as err:
            CorpusStore.open(index_dir=folder, write=True)
        assert "wait for the other 'imagerag index' run" in str(err.value.hint)
        with CorpusStore.open(index_dir=folder) as reader:  # readers never take the lock
            assert reader.count() == 0
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    CorpusStore.open(index_dir=folder, write=True).close()


def test_a_store_closed_by_another_thread_releases_the_lock(tmp_path):
    folder = tmp_path / "corpus"
    store = CorpusStore.open(index_dir=folder, write=True)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join()
    with CorpusStore.open(index_dir=folder, write=True) as again:
        with pytest.raises(CorpusError, match="another process"):
            CorpusStore.open(index_dir=folder, write=True)
        assert again.write


NO_FCNTL = textwrap.dedent("""
    import sys
    sys.modules["fcntl"] = None  # as on Windows: any `import fcntl` fails
    import imagerag_sdk.index
    from imagerag_sdk.plugins import get_registry

    registry = get_registry()
    assert not [p for p in registry.broken if p.name == "builtins"], registry.broken
    assert "index" in registry.names("retriever"), registry.names("retriever")
    store = imagerag_sdk.index.CorpusStore.open(index_dir=sys.argv[1], write=True)
    store.close()
    print("ok")
""")


def test_the_index_works_without_fcntl(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_FCNTL, str(tmp_path / "corpus")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
