"""The tiny builders' folder handling: a build appears whole or not at all (no torch needed)."""

from __future__ import annotations

import os

import pytest

from imagerag_diffusers.tiny import TINY_VERSION, _building, _done


def test_a_build_appears_whole_with_its_marker(tmp_path):
    root = tmp_path / "sdxl"
    with _building(root) as tmp:
        (tmp / "pipeline").mkdir()
        (tmp / "pipeline" / "model.json").write_text("{}")
    assert _done(root) and (root / "pipeline" / "model.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["sdxl"]


def test_a_failed_build_leaves_nothing(tmp_path):
    root = tmp_path / "sdxl"
    with pytest.raises(OSError, match="disk full"):
        with _building(root) as tmp:
            (tmp / "half").write_text("x")
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_an_old_or_broken_folder_is_replaced(tmp_path):
    root = tmp_path / "sdxl"
    root.mkdir()
    (root / "leftover").write_text("old")
    with _building(root) as tmp:
        (tmp / "new").write_text("new")
    assert _done(root) and sorted(p.name for p in root.iterdir()) == [".imagerag-tiny", "new"]


def test_losing_a_race_to_another_builder_keeps_theirs(tmp_path):
    root = tmp_path / "sdxl"
    with _building(root) as tmp:
        (tmp / "mine").write_text("mine")
        root.mkdir()  # another process finished first
        (root / "theirs").write_text("theirs")
        (root / ".imagerag-tiny").write_text(TINY_VERSION + "\n")
    assert sorted(p.name for p in root.iterdir()) == [".imagerag-tiny", "theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["sdxl"]


def test_a_build_is_on_disk_before_it_appears(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    root = tmp_path / "sdxl"
    with _building(root) as tmp:
        (tmp / "weights.safetensors").write_bytes(b"w")
    for path in (root / "weights.safetensors", root / ".imagerag-tiny"):
        assert os.stat(path).st_ino in synced, path
