"""The siglip embedder on a tiny SigLIP-shaped model: hub tokenizer offline, local tokenizer folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk.errors import ConfigError

pytestmark = pytest.mark.slow

SIGLIP_LIKE = {
    "embed_dim": 16, "custom_text": True, "init_logit_bias": -10,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16,
                   "pool_type": "avg"},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP",
                 "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 32, "heads": 2, "layers": 1,
                 "no_causal_mask": True, "proj_bias": True, "pool_type": "last"},
}


@pytest.fixture(scope="module")
def clip_siglip_files(tmp_path_factory):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("clip_siglip")
    (root / "tiny-siglip.json").write_text(json.dumps(SIGLIP_LIKE))
    words = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "dog", "sheep", "car"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(root / "tokenizer")
    return {"model": "tiny-siglip", "model_config": str(root / "tiny-siglip.json"), "weights": None,
            "device": "cpu"}, str(root / "tokenizer")


def test_clip_siglip_hub_tokenizer_offline_is_clear(clip_siglip_files, monkeypatch):
    from huggingface_hub import constants

    from imagerag_clip import SiglipEmbedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    options, _ = clip_siglip_files
    with pytest.raises(ConfigError, match="offline, set tokenizer: ") as err:
        SiglipEmbedder(options).load()
    assert "timm/ViT-B-16-SigLIP" in str(err.value)


def test_clip_siglip_local_tokenizer_folder(clip_siglip_files):
    from imagerag_clip import SiglipEmbedder

    options, tokenizer = clip_siglip_files
    emb = SiglipEmbedder(options, tokenizer=tokenizer, dtype="fp32").load()
    rows = emb.embed_texts(["a photo of a cat", "a dog", "zebra"])
    assert rows.shape == (3, 16) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert emb.embed_images([Image.new("RGB", (40, 30), (9, 99, 199))]).shape == (1, 16)
    # SigLIP preprocessing (squash, mean/std 0.5) since no tag or hub config names it
    assert "pre=32x32,squash,bicubic,mean=(0.5000,0.5000,0.5000)" in emb.identity
    assert "weights=random:seed=0" in emb.identity


def test_clip_missing_tokenizer_path_is_clear(clip_siglip_files, tmp_path):
    from imagerag_clip import SiglipEmbedder

    options, _ = clip_siglip_files
    with pytest.raises(ConfigError, match="tokenizer path not found"):
        SiglipEmbedder(options, tokenizer=str(tmp_path / "absent")).load()
