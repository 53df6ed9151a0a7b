"""A tiny random-weight open_clip CLIP model on disk, for offline tests and demos.

Stable API (other tests and the offline demo rely on it)::

    from imagerag_clip.tiny import build_tiny_clip
    opts = build_tiny_clip(tmp_dir)   # {"model": ..., "model_config": ..., "weights": ...}
    emb = ClipEmbedder(opts)          # or build_component("embedder", "clip", opts)
    # in a profile: embedder: {use: clip, model: <opts.model>, model_config: <…>, weights: <…>}

``build_tiny_clip(directory, *, seed=0)`` writes ``<directory>/imagerag-tiny-clip.json`` (an
open_clip architecture: embed_dim 32, a 2-layer ViT on 32×32 images with 8-pixel patches and mean
pooling, a 2-layer text transformer over CLIP's 49408-token BPE vocabulary, context 77) and
``<directory>/imagerag-tiny-clip.safetensors`` (≈6.6 MB), and returns the embedder options that
load them through the real open_clip path (``add_model_config`` + ``pretrained=<file>``). Same
seed → byte-identical weights; files already there with the right content are left alone.
The tokenizer is open_clip's bundled one, so nothing is downloaded.

The weights are random: similarities are deterministic but meaningless (distinct images usually
score far below 0.95 with each other, but nothing about content is learned).

``build_tiny_siglip(directory)`` writes a tiny SigLIP the same way (open_clip's SigLIP layout: a
timm ViT tower with attention pooling, a bidirectional text tower, logit bias) with a small local
word-level tokenizer folder; ``build_tiny_dino(directory)`` a tiny timm DINO ViT
(``vit_base_patch16_224.dino`` shrunk through ``model_kwargs``). Each returns the options of its
scorer (``siglip`` / ``dino``; the SigLIP ones also suit the ``siglip`` embedder).

Command line: ``python -m imagerag_clip.tiny DIR`` prints the options as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from imagerag_sdk.atomic import write_bytes

TINY_NAME = "imagerag-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8,
                   "pool_type": "avg"},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def build_tiny_clip(directory: str | Path, *, seed: int = 0) -> dict[str, str]:
    """Write a tiny random CLIP (config + safetensors) under ``directory``; return its options.

    Returns ``{"model": "imagerag-tiny-clip", "model_config": "<abs path>.json",
    "weights": "<abs path>.safetensors"}`` — valid options of the ``clip`` embedder (and of the
    ``embedder`` spec of the ``clip`` critic). ``seed`` changes the weights file name too
    (``imagerag-tiny-clip-seed<N>.safetensors`` for seeds other than 0), so two seeds can share
    one directory.
    """
    import torch

    from .loading import import_open_clip

    open_clip = import_open_clip()
    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / f"{TINY_NAME}.json"
    config_text = json.dumps(TINY_CONFIG, indent=2, sort_keys=True) + "\n"
    if not config_path.is_file() or config_path.read_text() != config_text:
        write_bytes(config_path, config_text.encode())
    open_clip.add_model_config(config_path)
    suffix = "" if seed == 0 else f"-seed{seed}"
    weights_path = root / f"{TINY_NAME}{suffix}.safetensors"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_NAME, pretrained=None)
    _save_state(model, weights_path, f"tiny random CLIP, seed {seed}")
    return _options(config_path, weights_path)


TINY_SIGLIP_NAME = "imagerag-tiny-siglip"
TINY_SIGLIP_CONFIG = {
    "embed_dim": 64, "init_logit_bias": -10, "custom_text": True,
    "vision_cfg": {"image_size": 32, "timm_model_name": "test_vit", "timm_model_pretrained": False,
                   "timm_pool": "map", "timm_proj": "none"},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP",
                 "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 32, "heads": 2, "layers": 2,
                 "no_causal_mask": True, "proj_bias": True, "pool_type": "last", "norm_kwargs": {"eps": 1e-6}},
}
TINY_SIGLIP_WORDS = ("<pad>", "</s>", "<unk>", "a", "an", "the", "photo", "of", "in", "on", "painting",
                     "oil", "cat", "dog", "sheep", "car", "boat", "bird", "red", "green", "blue", "field")
TINY_DINO_KWARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _save_state(model: Any, path: Path, note: str) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    data = save(state, metadata={"imagerag": note})
    if not path.is_file() or path.read_bytes() != data:
        write_bytes(path, data)


def build_tiny_siglip(directory: str | Path, *, seed: int = 0) -> dict[str, str]:
    """Write a tiny random SigLIP (config, safetensors, tokenizer folder) under ``directory``;
    return ``{"model", "model_config", "weights", "tokenizer"}`` (the ``siglip`` scorer's and
    embedder's options). The tokenizer knows a few words (:data:`TINY_SIGLIP_WORDS`); others are
    ``<unk>``. Needs transformers (as any SigLIP tokenizer does)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from .loading import import_open_clip

    open_clip = import_open_clip()
    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / f"{TINY_SIGLIP_NAME}.json"
    config_text = json.dumps(TINY_SIGLIP_CONFIG, indent=2, sort_keys=True) + "\n"
    if not config_path.is_file() or config_path.read_text() != config_text:
        write_bytes(config_path, config_text.encode())
    open_clip.add_model_config(config_path)
    tokenizer_dir = root / f"{TINY_SIGLIP_NAME}-tokenizer"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_SIGLIP_WORDS)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                unk_token="<unk>").save_pretrained(tokenizer_dir)
    weights_path = root / f"{TINY_SIGLIP_NAME}{'' if seed == 0 else f'-seed{seed}'}.safetensors"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_SIGLIP_NAME, pretrained=None)
    _save_state(model, weights_path, f"tiny random SigLIP, seed {seed}")
    return {**_options(config_path, weights_path, TINY_SIGLIP_NAME), "tokenizer": str(tokenizer_dir)}


def build_tiny_dino(directory: str | Path, *, seed: int = 0) -> dict[str, Any]:
    """Write a tiny random timm DINO ViT (``vit_base_patch16_224.dino`` with
    :data:`TINY_DINO_KWARGS`: 32×32 input, 8-pixel patches, width 32, 2 blocks) as safetensors
    under ``directory``; return the ``dino`` scorer's options that load it
    (``{"model", "weights", "model_kwargs"}``)."""
    import torch

    from .dino import import_timm

    timm = import_timm()
    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    weights_path = root / f"imagerag-tiny-dino{'' if seed == 0 else f'-seed{seed}'}.safetensors"
    model_name = "vit_base_patch16_224.dino"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(model_name, pretrained=False, num_classes=0, **TINY_DINO_KWARGS)
    _save_state(model, weights_path, f"tiny random DINO ViT, seed {seed}")
    return {"model": model_name, "weights": str(weights_path), "model_kwargs": dict(TINY_DINO_KWARGS)}


def _options(config_path: Path, weights_path: Path, name: str = TINY_NAME) -> dict[str, str]:
    return {"model": name, "model_config": str(config_path), "weights": str(weights_path)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or args[0] in ("-h", "--help"):
        print("usage: python -m imagerag_clip.tiny DIR [SEED]", file=sys.stderr)
        return 2
    import logging

    logging.disable(logging.WARNING)  # open_clip warns that the model is random: it is meant to be
    opts = build_tiny_clip(args[0], seed=int(args[1]) if len(args) == 2 else 0)
    print(json.dumps(opts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
