"""imagerag_sdk.atomic, and that every writer (trace, store, HNSW, BM25, fakes) goes through it."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk import atomic
from imagerag_sdk.atomic import replacing, write_bytes, write_text
from imagerag_sdk.index import CorpusStore, HnswBackend
from imagerag_sdk.runtrace import Capabilities, RunTrace
from imagerag_sdk.testing.fakes import fake_corpus
from imagerag_sdk.trace import RunRecorder

POSIX = os.name != "nt"


class DiskLog:
    """Records every ``os.fsync`` (by the inode it flushed) and ``os.replace``, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            self.events.append(("fsync", (st.st_dev, st.st_ino)))
            real_fsync(fd)

        def replace(src, dst) -> None:
            real_replace(src, dst)
            self.events.append(("replace", Path(dst)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def mark(self, what: str) -> None:
        self.events.append(("mark", what))

    def fsynced(self, path: Path) -> int:
        """Position of the last fsync of ``path``'s inode (it must exist now); -1 when never."""
        st = os.stat(path)
        hits = [i for i, e in enumerate(self.events) if e == ("fsync", (st.st_dev, st.st_ino))]
        return hits[-1] if hits else -1

    def replaced(self, path: Path) -> int:
        hits = [i for i, e in enumerate(self.events) if e == ("replace", Path(path))]
        return hits[-1] if hits else -1

    def durable(self, path: Path) -> None:
        """``path`` was fsynced, then renamed into place, then its folder fsynced."""
        file_at, renamed_at = self.fsynced(path), self.replaced(path)
        assert file_at >= 0, f"{path} was never fsynced"
        assert renamed_at > file_at, f"{path} was not fsynced before it was renamed into place"
        if POSIX:
            assert self.fsynced(path.parent) > renamed_at, f"{path.parent} not fsynced after the rename"


@pytest.fixture
def disk(monkeypatch) -> DiskLog:
    return DiskLog(monkeypatch)


# -- the helper ------------------------------------------------------------------------------------
def test_a_reader_never_sees_a_partial_file(tmp_path):
    target = tmp_path / "big.bin"
    versions = [b"a" * (4 << 20), b"b" * (3 << 20) + b"end"]
    write_bytes(target, versions[0])
    done = threading.Event()

    def rewrite() -> None:
        try:
            for i in range(40):
                write_bytes(target, versions[(i + 1) % 2])
        finally:
            done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        data = target.read_bytes()
        assert data in versions, f"read {len(data)} bytes: a partial or mixed file"
        reads += 1
    writer.join()
    assert target.read_bytes() == versions[0]
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"], "no temporary file is left"


def test_an_exception_inside_replacing_removes_the_temp_and_keeps_the_target(tmp_path):
    target = tmp_path / "data.json"
    target.write_text("old")
    seen = []
    with pytest.raises(RuntimeError, match="writer failed"):
        with replacing(target) as tmp:
            seen.append(tmp)
            tmp.write_text("half of the new")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert seen[0].parent == tmp_path and not os.path.lexists(seen[0])
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_a_folder_written_whole_is_removed_on_failure(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(ValueError):
        with replacing(target) as tmp:
            (tmp / "sub").mkdir(parents=True)
            (tmp / "sub" / "a.npy").write_bytes(b"x")
            raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_leaves_the_target_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "trace.json"
    target.write_text("old")

    def no_rename(src, dst):
        raise OSError(errno.EXDEV, "rename refused")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="rename refused"):
        write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]


def test_nothing_written_is_an_error_and_the_target_stays(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with replacing(target):
            pass
    assert target.read_bytes() == b"old"


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, disk):
    target = tmp_path / "report.html"
    write_text(target, "<html>é</html>")
    assert target.read_bytes() == "<html>é</html>".encode()
    disk.durable(target)


def test_a_folder_written_whole_is_fsynced_throughout(tmp_path, disk):
    target = tmp_path / "model"
    with replacing(target) as tmp:
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "a.npy").write_bytes(b"a")
        (tmp / "b.json").write_text("{}")
    renamed = disk.replaced(target)
    for inner in (target / "sub" / "a.npy", target / "b.json"):
        assert 0 <= disk.fsynced(inner) < renamed, inner
    if POSIX:
        assert 0 <= disk.fsynced(target / "sub") < renamed
        assert 0 <= disk.fsynced(target) < renamed
    disk.durable(target)


@pytest.mark.skipif(not POSIX, reason="folders are not fsynced on Windows")
def test_a_failing_folder_fsync_is_an_error(tmp_path, monkeypatch):
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "folder fsync failed")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="folder fsync failed"):
        write_bytes(tmp_path / "x.bin", b"x")


def test_folders_are_not_opened_where_they_cannot_be_fsynced(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "FSYNC_FOLDERS", False)  # what Windows sets
    opened: list[Path] = []
    real_open = os.open

    def record(path, *args, **kwargs) -> int:
        opened.append(Path(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", record)
    write_bytes(tmp_path / "x.bin", b"x")
    assert tmp_path not in opened and (tmp_path / "x.bin").read_bytes() == b"x"


def test_writers_of_one_file_in_several_threads_never_collide(tmp_path):
    target = tmp_path / "shared.txt"
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        for i in range(60):
            write_text(target, f"{n}:{i}")

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(write, n) for n in range(4)]:
            f.result()
    assert target.read_text().endswith(":59")
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


def _trace() -> RunTrace:
    caps = Capabilities(max_references=1, conditioning="none", uses_captions=False, image_placeholder="")
    return RunTrace(prompt="a cat", seed=0, mode="captions", capabilities=caps)


# -- every writer goes through it --------------------------------------------------------------------
def test_every_file_of_a_run_folder_is_written_durably(tmp_path, disk):
    rec = RunRecorder(tmp_path, _trace())
    rec.save_image(Image.new("RGB", (8, 8), (1, 2, 3)), "initial.png")
    side = rec.side_text("a caption " * 20)
    rec.finish("done")
    for name in ("initial.png", side, "trace.json", "report.html"):
        disk.durable(tmp_path / name)
    assert json.loads((tmp_path / "trace.json").read_text())["status"] == "done"


def test_two_threads_saving_one_trace_do_not_collide(tmp_path):
    rec = RunRecorder(tmp_path, _trace())
    start = threading.Barrier(2)

    def save() -> None:
        start.wait()
        for _ in range(100):
            rec.save()

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(save) for _ in range(2)]:
            f.result()
    assert json.loads((tmp_path / "trace.json").read_text())["status"] == "running"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["references", "trace.json"]


def test_a_new_vectors_file_is_durable_before_the_switch_commits(tmp_path, disk, monkeypatch):
    switch = CorpusStore._switch_vectors

    def recorded(self, name, *args, **kwargs):
        disk.mark(f"switch {name}")
        return switch(self, name, *args, **kwargs)

    monkeypatch.setattr(CorpusStore, "_switch_vectors", recorded)
    with CorpusStore.open(index_dir=tmp_path / "c", write=True) as store:
        store.ensure_capacity(10, 4)
        name = store.meta["vectors_file"]
        path = store.path / name
        disk.durable(path)
        assert disk.events.index(("mark", f"switch {name}")) > max(disk.replaced(path), disk.fsynced(store.path))
        disk.durable(store.write_report({"ok": True}))


def test_an_hnsw_snapshot_is_saved_durably(tmp_path, disk):
    vectors = np.eye(8, dtype=np.float32)
    backend = HnswBackend.build(vectors, np.arange(8))
    target = tmp_path / "hnsw-e0-n8-t0.bin"
    backend.save(target)
    disk.durable(target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert len(HnswBackend.load(target, 8)) == 8


def test_the_fake_corpus_is_written_durably(tmp_path, disk):
    root = fake_corpus(tmp_path / "corpus", captions=["a red ball", "a blue cube"])
    pngs = sorted(root.glob("*.png"))
    assert len(pngs) == 2 and sorted(p.suffix for p in root.iterdir()) == [".png", ".png", ".txt", ".txt"]
    for png in pngs:
        disk.durable(png)
        disk.durable(png.with_suffix(".txt"))


def test_a_saved_bm25_index_is_durable(tmp_path, disk):
    pytest.importorskip("bm25s")
    bm25 = pytest.importorskip("imagerag_bm25")
    built = bm25.BM25Index([("a.png", "a red ball"), ("b.png", "a blue cube")], save_dir=tmp_path)
    (where,) = tmp_path.iterdir()
    files = list(where.iterdir())
    assert built.loaded_from is None and "kept.npy" in {f.name for f in files}
    for f in files:
        assert 0 <= disk.fsynced(f) < disk.replaced(where), f
    disk.durable(where)
    again = bm25.BM25Index([("a.png", "a red ball"), ("b.png", "a blue cube")], save_dir=tmp_path)
    assert again.loaded_from == where
