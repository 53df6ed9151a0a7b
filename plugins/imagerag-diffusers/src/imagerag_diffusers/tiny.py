"""Tiny random-weight pipelines for offline tests and the no-weights demo.

Each ``build_tiny_<kind>(directory=None)`` writes a complete, miniature copy of the real layout
under ``directory/<kind>/`` (default directory: ``$IMAGERAG_HOME/cache/tiny-diffusers``): a
diffusers pipeline folder from ``save_pretrained``; for SDXL also an IP-Adapter repository in the
h94 layout; for FLUX also a Redux prior folder. It returns the generator options that load it
through the real ``from_pretrained`` / ``load_ip_adapter`` code::

    opts = build_tiny_sdxl("/tmp/tiny")          # {"model": "/tmp/tiny/sdxl/pipeline", ...}
    gen = SDXLGenerator(opts)                      # or a profile: generator: {use: sdxl, **opts}

The weights are random (seeded, so identical on every build): images are noise-like and say
nothing about quality. A build takes about a second per kind and ~1-5 MB; a folder that is
already complete is reused. From the shell::

    python -m imagerag_diffusers.tiny [DIR] [--which sdxl,flux,omnigen]   # prints options as JSON

The options pin ``device: cpu`` and ``dtype: float32`` (bit-reproducible), ``width``/``height``
32 and ``steps`` 2. The JSON is ``{kind: options}``; this API is kept stable for the offline demo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from imagerag_sdk.atomic import replacing

TINY_VERSION = "1"
SIZE = 32
"""Output side of the tiny pipelines, in pixels."""
STEPS = 2

_COMMON = {"device": "cpu", "dtype": "float32", "width": SIZE, "height": SIZE, "steps": STEPS}


def default_directory() -> Path:
    """Where the SDK keeps tiny models unless told otherwise: ``$IMAGERAG_HOME/cache/tiny-diffusers``."""
    from imagerag_sdk.paths import cache_dir

    return cache_dir() / "tiny-diffusers"


def _root(directory: str | Path | None, kind: str) -> Path:
    base = default_directory() if directory is None else Path(directory).expanduser()
    return base.resolve() / kind


def _done(folder: Path) -> bool:
    marker = folder / ".imagerag-tiny"
    return marker.is_file() and marker.read_text().strip() == TINY_VERSION


@contextlib.contextmanager
def _building(root: Path) -> Iterator[Path]:
    """Write into a temporary folder, then fsync it and move it to ``root`` in one step, so a
    crashed or concurrent build never leaves a half-written folder that looks complete."""
    root.parent.mkdir(parents=True, exist_ok=True)
    built = False
    try:
        with replacing(root) as tmp:
            tmp.mkdir()
            yield tmp
            built = True
            (tmp / ".imagerag-tiny").write_text(TINY_VERSION + "\n")
            if root.exists() and not _done(root):
                shutil.rmtree(root)  # an older version or a broken folder
    except OSError:
        if not built or not _done(root):  # else lost a race to another builder: theirs is as good
            raise


def _clip_text_config(vocab_size: int, **extra: Any):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32,
                          intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                          vocab_size=vocab_size, max_position_embeddings=77, hidden_act="gelu",
                          **extra)


# -- SDXL + IP-Adapter plus ------------------------------------------------------------------
def build_tiny_sdxl(directory: str | Path | None = None, *, seed: int = 0) -> dict[str, Any]:
    """A tiny SDXL pipeline plus a tiny IP-Adapter "plus" repository in the h94 layout
    (``sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors``, ``models/image_encoder``)."""
    root = _root(directory, "sdxl")
    pipe_dir, adapter_dir = root / "pipeline", root / "ip-adapter"
    options = {"model": str(pipe_dir), "ip_adapter": str(adapter_dir), **_COMMON}
    if _done(root):
        return options
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .tiny_tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=SIZE // 8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                        norm_num_groups=8, sample_size=SIZE)
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(_clip_text_config(len(tokenizer)))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(len(tokenizer), projection_dim=32))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=scheduler)
    with _building(root) as tmp:
        pipe.save_pretrained(tmp / "pipeline")  # type: ignore[attr-defined]  # diffusers hints name a dummy class
        _write_tiny_ip_adapter(tmp / "ip-adapter", unet, seed=seed)
    return options


def _write_tiny_ip_adapter(directory: Path, unet: Any, *, seed: int) -> None:
    """The single-file "plus" adapter (a 4-layer perceiver resampler + per-layer to_k/to_v) in the
    original key layout, and a tiny CLIP vision encoder where the ViT-H one lives."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    gen = torch.Generator().manual_seed(seed + 1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.2

    embed, dim, out, queries, inner = 32, 64, unet.config.cross_attention_dim, 4, 64
    sd: dict[str, torch.Tensor] = {
        "image_proj.latents": rand(1, queries, dim),
        "image_proj.proj_in.weight": rand(dim, embed), "image_proj.proj_in.bias": rand(dim),
        "image_proj.proj_out.weight": rand(out, dim), "image_proj.proj_out.bias": rand(out),
        "image_proj.norm_out.weight": torch.ones(out), "image_proj.norm_out.bias": torch.zeros(out),
    }
    for i in range(4):
        p = f"image_proj.layers.{i}"
        for norm in ("norm1", "norm2"):
            sd[f"{p}.0.{norm}.weight"], sd[f"{p}.0.{norm}.bias"] = torch.ones(dim), torch.zeros(dim)
        sd[f"{p}.0.to_q.weight"] = rand(inner, dim)
        sd[f"{p}.0.to_kv.weight"] = rand(2 * inner, dim)
        sd[f"{p}.0.to_out.weight"] = rand(dim, inner)
        sd[f"{p}.1.0.weight"], sd[f"{p}.1.0.bias"] = torch.ones(dim), torch.zeros(dim)
        sd[f"{p}.1.1.weight"] = rand(4 * dim, dim)
        sd[f"{p}.1.3.weight"] = rand(dim, 4 * dim)
    key_id = 1
    for name in unet.attn_processors:  # ids count cross-attention layers, in this order, by twos
        if not name.endswith("attn2.processor"):
            continue
        hidden = unet.get_submodule(name[: -len(".processor")]).to_q.in_features
        sd[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, out)
        sd[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, out)
        key_id += 2
    (directory / "sdxl_models").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()},
              str(directory / "sdxl_models" / "ip-adapter-plus_sdxl_vit-h.safetensors"))
    torch.manual_seed(seed + 2)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=embed, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, image_size=32, patch_size=4))
    encoder.save_pretrained(directory / "models" / "image_encoder")


# -- OmniGen ---------------------------------------------------------------------------------
def build_tiny_omnigen(directory: str | Path | None = None, *, seed: int = 0) -> dict[str, Any]:
    """A tiny OmniGen pipeline (1-layer Phi-3-style transformer, 8x-downscaling VAE)."""
    root = _root(directory, "omnigen")
    pipe_dir = root / "pipeline"
    options = {"model": str(pipe_dir), "max_input_image_size": SIZE, **_COMMON}
    if _done(root):
        return options
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, OmniGenPipeline, OmniGenTransformer2DModel

    from .tiny_tokenizers import llama_tokenizer

    torch.manual_seed(seed)
    tokenizer = llama_tokenizer()
    transformer = OmniGenTransformer2DModel(
        hidden_size=16, num_attention_heads=4, num_key_value_heads=4, intermediate_size=32,
        num_layers=1, in_channels=4, time_step_dim=4, pad_token_id=2, vocab_size=len(tokenizer) + 8,
        rope_scaling={"long_factor": [1, 2], "short_factor": [1, 2]})
    vae = AutoencoderKL(block_out_channels=(4, 4, 4, 4), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                        norm_num_groups=1, sample_size=SIZE)
    scheduler = FlowMatchEulerDiscreteScheduler(invert_sigmas=True, num_train_timesteps=1)
    pipe = OmniGenPipeline(transformer=transformer, vae=vae, scheduler=scheduler, tokenizer=tokenizer)
    with _building(root) as tmp:
        pipe.save_pretrained(tmp / "pipeline")  # type: ignore[attr-defined]  # diffusers hints name a dummy class
    return options


# -- FLUX (+ Redux prior) --------------------------------------------------------------------
def build_tiny_flux(directory: str | Path | None = None, *, seed: int = 0) -> dict[str, Any]:
    """A tiny FLUX pipeline (schnell-like: no guidance embedding) and a tiny Redux prior folder.
    The same transformer also runs FluxKontextPipeline (``conditioning: kontext``)."""
    root = _root(directory, "flux")
    pipe_dir, redux_dir = root / "pipeline", root / "redux"
    options = {"model": str(pipe_dir), "redux": str(redux_dir), **_COMMON}
    if _done(root):
        return options
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxPriorReduxPipeline,
        FluxTransformer2DModel,
    )
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import (
        CLIPTextModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
        T5Config,
        T5EncoderModel,
    )

    from .tiny_tokenizers import clip_tokenizer, t5_tokenizer

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=False)
    vae = AutoencoderKL(block_out_channels=(4,), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                        latent_channels=1, norm_num_groups=1, sample_size=SIZE, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = CLIPTextModel(_clip_text_config(len(tokenizer)))
    text_encoder_2 = T5EncoderModel(T5Config(
        d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, vocab_size=len(tokenizer_2),
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                        transformer=transformer)
    torch.manual_seed(seed + 1)
    prior = FluxPriorReduxPipeline(
        image_encoder=SiglipVisionModel(SiglipVisionConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=4)),
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
        image_embedder=ReduxImageEncoder(redux_dim=32, txt_in_features=32))
    with _building(root) as tmp:
        pipe.save_pretrained(tmp / "pipeline")  # type: ignore[attr-defined]  # diffusers hints name a dummy class
        prior.save_pretrained(tmp / "redux")  # type: ignore[attr-defined]  # diffusers hints name a dummy class
    return options


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "sdxl": build_tiny_sdxl, "flux": build_tiny_flux, "omnigen": build_tiny_omnigen}


def build_tiny(directory: str | Path | None = None,
               which: Sequence[str] = tuple(BUILDERS)) -> dict[str, dict[str, Any]]:
    """Build the named tiny pipelines under ``directory``; ``{kind: generator options}``."""
    unknown = [w for w in which if w not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown tiny pipeline(s) {unknown}; choose from {sorted(BUILDERS)}")
    return {kind: BUILDERS[kind](directory) for kind in which}


def _quiet() -> None:
    """No progress bars from save_pretrained on the command line (stdout is the JSON)."""
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagerag_diffusers.tiny",
                                     description="Build tiny random-weight pipelines and print the "
                                                 "generator options that load them (JSON).")
    parser.add_argument("directory", nargs="?", default=None,
                        help="where to write them (reused when already built); default "
                             "$IMAGERAG_HOME/cache/tiny-diffusers")
    parser.add_argument("--which", default=",".join(BUILDERS),
                        help="comma-separated subset of: " + ", ".join(BUILDERS))
    args = parser.parse_args(argv)
    which = [w.strip() for w in args.which.split(",") if w.strip()]
    _quiet()
    try:
        options = build_tiny(args.directory, which)
    except ValueError as exc:
        parser.error(str(exc))
    json.dump(options, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
