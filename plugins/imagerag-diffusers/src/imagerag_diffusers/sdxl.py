"""``sdxl``: Stable Diffusion XL with the IP-Adapter "plus" ViT-H adapter (the paper's setup).

One pipeline serves both passes. The adapter is loaded once; the first pass (no reference) runs
with the adapter scale at 0 — diffusers' IP-Adapter attention then skips the image branch
entirely, so the output equals plain SDXL — and a neutral grey image to satisfy the call
signature. The reference pass sets the scale (0.5 by default) and passes the reference.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from PIL import Image
from pydantic import Field

from imagerag_sdk.types import GeneratorCapabilities, Reference

from .base import GUIDANCE_ALIAS, STEPS_ALIAS, DiffusersGenerator, DiffusersOptions, LoadedPipeline
from .loading import diffusers_class, dtype_kwarg, import_diffusers, resolve_source, translate_errors

ADAPTER_LAYOUT = ("the h94/IP-Adapter layout is <ip_adapter>/<ip_adapter_subfolder>/<ip_adapter_weight_name> "
                  "(sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors) and the image encoder in "
                  "<ip_adapter>/<image_encoder_subfolder> (models/image_encoder)")
ENCODER_LAYOUT = ("an image encoder folder holds a transformers CLIPVisionModelWithProjection "
                  "(config.json + weights)")


class SDXLOptions(DiffusersOptions):
    model: str = Field("stabilityai/stable-diffusion-xl-base-1.0",
                       description="SDXL pipeline weights: hub id or local folder (model_index.json)")
    steps: int = Field(50, ge=1, le=1000, validation_alias=STEPS_ALIAS,
                       description="Denoising steps (diffusers' SDXL default)")
    guidance: float = Field(5.0, ge=0.0, validation_alias=GUIDANCE_ALIAS,
                            description="Classifier-free guidance scale")
    negative_prompt: str | None = Field(None, description="Negative prompt for both passes")
    ip_adapter: str = Field("h94/IP-Adapter", description="IP-Adapter repository: hub id or local "
                                                          "folder with the same layout")
    ip_adapter_subfolder: str = Field("sdxl_models", description="Folder of the adapter file inside "
                                                                 "the IP-Adapter repository")
    ip_adapter_weight_name: str = Field("ip-adapter-plus_sdxl_vit-h.safetensors",
                                        description="Adapter file name inside ip_adapter_subfolder")
    image_encoder_subfolder: str = Field(
        "models/image_encoder",
        description="Image encoder folder inside the IP-Adapter repository; a name without '/' is "
                    "taken inside ip_adapter_subfolder. The ViT-H 'plus' adapter needs models/image_encoder")
    image_encoder: str | None = Field(None, description="A separate image encoder (hub id or local "
                                                        "folder); overrides image_encoder_subfolder")
    ip_adapter_scale: float = Field(0.5, ge=0.0, le=2.0, description="Adapter strength on the reference "
                                                                     "pass (the paper uses 0.5)")


class SDXLGenerator(DiffusersGenerator[SDXLOptions]):
    name = "sdxl"
    description = ("Stable Diffusion XL + IP-Adapter plus (ViT-H), one reference image at scale 0.5; "
                   "one pipeline for both passes (adapter at scale 0 on the first).")
    extra = "sdxl"
    gpu_dtype = "float16"

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=1, conditioning="adapter", uses_captions=False,
                                     image_placeholder="")

    def cache_key(self) -> tuple[Hashable, ...]:
        o = self.options
        return (o.variant, o.ip_adapter_subfolder, o.ip_adapter_weight_name,
                None if o.image_encoder else o.image_encoder_subfolder)

    def sources(self) -> dict[str, str]:
        o, out = self.options, super().sources()
        out["ip_adapter"] = resolve_source(o.ip_adapter, "sdxl ip_adapter")
        if o.image_encoder is not None:
            out["image_encoder"] = resolve_source(o.image_encoder, "sdxl image_encoder")
        return out

    def build(self, device: str, dtype: str) -> LoadedPipeline:
        torch, diffusers = import_diffusers(self.extra)
        o = self.options
        pipeline_cls = diffusers_class(diffusers, "StableDiffusionXLPipeline", self.extra)
        torch_dtype = getattr(torch, dtype)
        src = self.sources()
        model, adapter = src["model"], src["ip_adapter"]
        extra: dict[str, Any] = {}
        if o.image_encoder is not None:
            encoder_src = src["image_encoder"]
            with translate_errors("the IP-Adapter image encoder", encoder_src, extra=self.extra,
                                  generator=self.name, layout=ENCODER_LAYOUT):
                from transformers import CLIPVisionModelWithProjection

                extra["image_encoder"] = CLIPVisionModelWithProjection.from_pretrained(
                    encoder_src, dtype=torch_dtype)
        with translate_errors("the SDXL pipeline", model, extra=self.extra, generator=self.name):
            pipe = pipeline_cls.from_pretrained(model, variant=o.variant,
                                                **dtype_kwarg(diffusers, torch_dtype), **extra)
        with translate_errors("the IP-Adapter", adapter, extra=self.extra, generator=self.name,
                              layout=ADAPTER_LAYOUT):
            pipe.load_ip_adapter(adapter, subfolder=o.ip_adapter_subfolder,
                                 weight_name=o.ip_adapter_weight_name,
                                 image_encoder_folder=None if o.image_encoder else o.image_encoder_subfolder)
        pipe.set_progress_bar_config(disable=True)
        self.place(pipe, device)
        size = _encoder_size(pipe)
        neutral = Image.new("RGB", (size, size), (127, 127, 127))
        return LoadedPipeline(pipe=pipe, device=device, dtype=dtype, parts={"neutral_image": neutral})

    def run(self, entry: LoadedPipeline, prompt: str, references: list[Reference],
            generator: Any) -> Image.Image:
        o = self.options
        pipe = entry.pipe
        if references:
            image, scale = references[0].open(), o.ip_adapter_scale
        else:
            image, scale = entry.parts["neutral_image"], 0.0
        pipe.set_ip_adapter_scale(scale)
        output = pipe(prompt=prompt, negative_prompt=o.negative_prompt, ip_adapter_image=image,
                      num_inference_steps=o.steps, guidance_scale=o.guidance, width=o.width,
                      height=o.height, generator=generator)
        return self.first_image(output)


def _encoder_size(pipe: Any) -> int:
    encoder = getattr(pipe, "image_encoder", None)
    size = getattr(getattr(encoder, "config", None), "image_size", None)
    return int(size) if size else 224
