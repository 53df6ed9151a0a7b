"""The clip/siglip embedders on a tiny random CLIP loaded through the real open_clip path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagerag_sdk.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip_fp32(clip_tiny):
    from imagerag_clip import ClipEmbedder

    return ClipEmbedder(clip_tiny, dtype="fp32", device="cpu", batch_size=2).load()


def _unit_rows(rows, n, dim):
    assert isinstance(rows, np.ndarray) and rows.dtype == np.float32 and rows.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_clip_embed_shapes_dtype_norm(clip_fp32, clip_images):
    assert clip_fp32.dim == 32
    _unit_rows(clip_fp32.embed_texts(["a cat", "a dog", "an oil painting of a sheep"]), 3, 32)
    _unit_rows(clip_fp32.embed_images(clip_images), len(clip_images), 32)
    assert clip_fp32.embed_texts([]).shape == (0, 32)
    assert clip_fp32.embed_images([]).shape == (0, 32)


def test_clip_batching_matches_one_by_one(clip_fp32, clip_images):
    texts = ["a cat", "a red car on a street", "x", "an oil painting of a sheep and a car", "sunset"]
    batched = clip_fp32.embed_texts(texts)  # batch_size=2: three forward passes
    single = np.concatenate([clip_fp32.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    batched = clip_fp32.embed_images(clip_images)
    single = np.concatenate([clip_fp32.embed_images([im]) for im in clip_images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # distinct inputs give distinct rows (the model is not constant)
    assert float((batched @ batched.T)[0, 1:].max()) < 0.999


def test_clip_preprocess_then_embed_equals_embed_images(clip_fp32, clip_images):
    pre = np.stack([clip_fp32.preprocess(im) for im in clip_images])
    assert pre.shape == (len(clip_images), 3, 32, 32) and pre.dtype == np.float32
    np.testing.assert_allclose(clip_fp32.embed_preprocessed(pre), clip_fp32.embed_images(clip_images),
                               atol=1e-6)
    with pytest.raises(ValueError, match="batch"):
        clip_fp32.embed_preprocessed(pre[:, :, :16])


def test_clip_tells_the_indexer_whether_it_computes_on_torch_cpu_threads(clip_tiny, clip_fp32):
    from imagerag_clip import ClipEmbedder

    assert clip_fp32.uses_torch_threads, "on the CPU: the indexer picks its torch threads"
    assert not ClipEmbedder(clip_tiny, device="cpu").uses_torch_threads, "not known before load"
    on_gpu = ClipEmbedder(clip_tiny, device="cpu").load()
    on_gpu.device = "cuda:0"  # what load() sets on a CUDA machine
    assert not on_gpu.uses_torch_threads, "a CUDA model is not probed on one CPU thread"


def test_clip_bf16_close_to_fp32_and_same_identity(clip_tiny, clip_fp32, clip_images):
    from imagerag_clip import ClipEmbedder

    bf16 = ClipEmbedder(clip_tiny, dtype="bf16", device="cpu").load()
    assert bf16.dtype == "bf16"
    for a, b in ((clip_fp32.embed_images(clip_images), bf16.embed_images(clip_images)),
                 (clip_fp32.embed_texts(["a cat", "a sheep and a car"]), bf16.embed_texts(["a cat", "a sheep and a car"]))):
        assert b.dtype == np.float32
        assert float((a * b).sum(axis=1).min()) >= 0.99
    assert bf16.identity == clip_fp32.identity


def test_clip_identity_names_model_weights_preprocessing(clip_tiny, clip_tiny_seed1, clip_fp32):
    from imagerag_clip import ClipEmbedder

    ident = clip_fp32.identity
    assert ident.startswith("open_clip:imagerag-tiny-clip+cfg:")
    assert "weights=sha256:" in ident and "pre=32x32,shortest,bicubic" in ident and "dim=32" in ident
    assert ClipEmbedder(clip_tiny, dtype="fp32").identity == ident  # stable across instances
    other = ClipEmbedder(clip_tiny_seed1, dtype="fp32")
    assert other.identity != ident
    assert other.identity.split("|weights=")[0] == ident.split("|weights=")[0]
    squashed = ClipEmbedder(clip_tiny, dtype="fp32", preprocess={"resize_mode": "squash"})
    assert squashed.identity != ident and "squash" in squashed.identity


def test_clip_dtype_auto_follows_cpu_support(clip_tiny, monkeypatch):
    from imagerag_clip import ClipEmbedder
    from imagerag_clip.loading import resolve_dtype

    monkeypatch.setenv("IMAGERAG_CPU_BF16", "0")
    assert resolve_dtype("auto", "cpu") == "fp32"
    monkeypatch.setenv("IMAGERAG_CPU_BF16", "1")
    assert resolve_dtype("auto", "cpu") == "bf16"
    assert resolve_dtype("auto", "cuda") == "fp16"
    assert resolve_dtype("fp32", "cuda") == "fp32"
    assert ClipEmbedder(clip_tiny, device="cpu").load().dtype == "bf16"


def test_clip_missing_weights_file_is_clear(clip_tiny, tmp_path):
    from imagerag_clip import ClipEmbedder

    missing = tmp_path / "nope" / "model.safetensors"
    with pytest.raises(ConfigError, match="weights file not found") as err:
        ClipEmbedder({**clip_tiny, "weights": str(missing)}).load()
    assert str(missing) in str(err.value)


def test_clip_unknown_tag_and_wrong_config(clip_tiny, tmp_path):
    from imagerag_clip import ClipEmbedder

    with pytest.raises(ConfigError, match="tags of ViT-B-32: .*openai"):
        ClipEmbedder(weights="no-such-tag").load()
    with pytest.raises(ConfigError, match="set model: imagerag-tiny-clip"):
        ClipEmbedder({**clip_tiny, "model": "ViT-B-32"}).load()
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        ClipEmbedder(model="ViT-Z-99", weights=clip_tiny["weights"]).load()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(ConfigError, match="not an open_clip config"):
        ClipEmbedder(model="bad", model_config=str(bad), weights=clip_tiny["weights"]).load()
    # weights of another architecture: a clear load error, not a bare RuntimeError
    with pytest.raises(ConfigError, match="must name the architecture"):
        ClipEmbedder(model="RN50", weights=clip_tiny["weights"]).load()


def test_clip_hub_id_offline_is_clear(tmp_path, monkeypatch):
    """A hub id that is not cached, with HF_HUB_OFFLINE=1: a ConfigError saying what to do."""
    from huggingface_hub import constants

    from imagerag_clip import ClipEmbedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at import time by huggingface_hub
    for weights in ("hf-hub:imagerag-test/does-not-exist", "openai"):
        with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=1 is set") as err:
            ClipEmbedder(weights=weights, device="cpu", cache_dir=str(tmp_path / "hf")).load()
        assert f"cannot fetch weights '{weights}'" in str(err.value)


@pytest.mark.parametrize("env,named", [({"TRANSFORMERS_OFFLINE": "1"}, "TRANSFORMERS_OFFLINE=1"),
                                       ({"HF_HUB_OFFLINE": "TRUE"}, "HF_HUB_OFFLINE=TRUE"),
                                       ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, None)])
def test_clip_fetch_error_names_the_offline_setting(monkeypatch, env, named):
    """The hint follows huggingface_hub's reading of the offline variables (nothing is loaded)."""
    from imagerag_clip import ClipEmbedder
    from imagerag_clip.loading import WeightsSource

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    error = ClipEmbedder(device="cpu")._load_error(WeightsSource("tag", "openai"), OSError("no file"))
    if named:
        assert f"{named} is set" in str(error)
    else:
        assert "offline" not in str(error).lower() and "your network" in str(error)


def test_clip_registered_and_built_by_name(clip_tiny, imagerag_registry):
    from imagerag_clip import ClipEmbedder, SiglipEmbedder
    from imagerag_sdk import build_component

    assert imagerag_registry.get("embedder", "clip").cls is ClipEmbedder
    assert imagerag_registry.get("embedder", "siglip").cls is SiglipEmbedder
    emb = build_component("embedder", "clip", dict(clip_tiny))
    assert emb is build_component("embedder", "clip", dict(clip_tiny))  # one instance per options
    assert emb.embed_texts(["a cat"]).shape == (1, 32)
    info = emb.describe()
    json.dumps(info)
    assert info["options"]["model_config"] == clip_tiny["model_config"]
    assert info["identity"] == emb.identity and info["runtime"]["device"] == "cpu"


def test_clip_tiny_cli_is_deterministic(clip_tiny, tmp_path, capsys):
    from imagerag_clip import tiny

    assert tiny.main([str(tmp_path)]) == 0  # what `python -m imagerag_clip.tiny DIR` runs
    opts = json.loads(capsys.readouterr().out)
    assert set(opts) == {"model", "model_config", "weights"}
    assert Path(opts["weights"]).read_bytes() == Path(clip_tiny["weights"]).read_bytes()
    assert Path(opts["model_config"]).read_text() == Path(clip_tiny["model_config"]).read_text()
    assert tiny.main([]) == 2


def test_clip_quick_gelu_follows_tag_and_changes_identity(clip_fp32, clip_tiny, clip_images):
    from imagerag_clip import ClipEmbedder
    from imagerag_clip.loading import tag_wants_quick_gelu

    assert tag_wants_quick_gelu("ViT-B-32", "openai")
    assert not tag_wants_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    qg = ClipEmbedder(clip_tiny, dtype="fp32", device="cpu", quick_gelu=True)
    assert "+quickgelu|" in qg.identity and qg.identity != clip_fp32.identity
    cos = (qg.embed_images(clip_images) * clip_fp32.embed_images(clip_images)).sum(axis=1)
    assert float(cos.min()) < 0.99999  # the activation really changed


def test_clip_preprocess_matches_the_models_own_transform(clip_fp32, clip_images):
    """The spec read from the loaded model gives what open_clip's transform for that model gives."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(**open_clip.get_model_preprocess_cfg(clip_fp32._model))
    transform = image_transform_v2(cfg, is_train=False)
    for img in clip_images:
        ours = clip_fp32.preprocess(img)
        assert np.abs(ours - transform(img).numpy()).max() < 1e-4


def test_clip_weights_folder_in_hub_layout(clip_tiny, clip_fp32, clip_images, tmp_path):
    """A local folder with open_clip_config.json + weights (open_clip's local-dir layout)."""
    import shutil

    from imagerag_clip import ClipEmbedder

    folder = tmp_path / "tiny-folder"
    folder.mkdir()
    model_cfg = json.loads(Path(clip_tiny["model_config"]).read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    shutil.copy(clip_tiny["weights"], folder / "open_clip_model.safetensors")
    emb = ClipEmbedder(model="imagerag-tiny-clip", weights=str(folder), dtype="fp32", device="cpu")
    np.testing.assert_allclose(emb.embed_images(clip_images), clip_fp32.embed_images(clip_images), atol=1e-6)
    np.testing.assert_allclose(emb.embed_texts(["a cat"]), clip_fp32.embed_texts(["a cat"]), atol=1e-6)
    # same weight bytes → same weights fingerprint
    assert emb.identity.split("|weights=")[1] == clip_fp32.identity.split("|weights=")[1]
    with pytest.raises(ConfigError, match="no open_clip_config.json"):
        ClipEmbedder(weights=str(tmp_path)).load()
