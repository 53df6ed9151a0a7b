"""How the embedder options are resolved: weights sources, dtype, CPU bf16 detection, hashing."""

from __future__ import annotations

import pytest

from imagerag_clip.loading import file_digest, resolve_dtype, resolve_weights
from imagerag_sdk.errors import ConfigError


def test_clip_resolve_weights_kinds(tmp_path, monkeypatch):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"weights")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text("{}")
    assert resolve_weights("openai", "ViT-B-32").kind == "tag"
    assert resolve_weights(None, "ViT-B-32").kind == "random"
    assert resolve_weights("none", "ViT-B-32").kind == "random"
    hub = resolve_weights("hf-hub:org/repo", "ViT-B-32")
    assert (hub.kind, hub.value, hub.model_name_override) == ("hub", "hf-hub:org/repo", "hf-hub:org/repo")
    assert resolve_weights(str(ckpt), "ViT-B-32").kind == "file"
    assert resolve_weights(str(folder), "ViT-B-32").kind == "dir"
    assert resolve_weights("local-dir:" + str(folder), "ViT-B-32").kind == "dir"
    for missing in (str(tmp_path / "nope.safetensors"), "./nope", "nope.pt", "~/nope/x"):
        with pytest.raises(ConfigError, match="weights file not found"):
            resolve_weights(missing, "ViT-B-32")
    with pytest.raises(ConfigError, match="no open_clip_config.json"):
        resolve_weights(str(tmp_path), "ViT-B-32")
    with pytest.raises(ConfigError, match="names no repository"):
        resolve_weights("hf-hub:", "ViT-B-32")
    # a bare tag wins over a same-named folder in the working directory
    (tmp_path / "openai").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("openai", "ViT-B-32").kind == "tag"


def test_clip_resolve_dtype(monkeypatch):
    monkeypatch.setenv("IMAGERAG_CPU_BF16", "1")
    assert resolve_dtype("auto", "cpu") == "bf16"
    monkeypatch.setenv("IMAGERAG_CPU_BF16", "0")
    assert resolve_dtype("auto", "cpu") == "fp32"
    assert resolve_dtype("auto", "cuda:0") == "fp16"
    assert resolve_dtype("bf16", "cpu") == "bf16"


def test_clip_file_digest_follows_content(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"a" * 10)
    first = file_digest(p)
    assert first == file_digest(p) and len(first) == 16
    p.write_bytes(b"b" * 11)
    assert file_digest(p) != first
