"""``omnigen``: OmniGen, which reads reference images in context, inside the prompt.

Image ``i`` is written ``<img><|image_i|></img>`` in the prompt; the core's reference template
("According to these examples of <caption 1>: <image 1>, …, generate <prompt>") fills those in,
so the prompt arrives with its placeholders and the references go to ``input_images`` in order.
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image
from pydantic import AliasChoices, Field

from imagerag_sdk.errors import ImageRAGError
from imagerag_sdk.types import GeneratorCapabilities, Reference

from .base import GUIDANCE_ALIAS, STEPS_ALIAS, DiffusersGenerator, DiffusersOptions, LoadedPipeline
from .loading import diffusers_class, dtype_kwarg, import_diffusers, translate_errors

PLACEHOLDER = "<img><|image_{i}|></img>"
_TAG = re.compile(r"<\|image_(\d+)\|>")


class OmniGenOptions(DiffusersOptions):
    model: str = Field("Shitao/OmniGen-v1-diffusers",
                       description="OmniGen pipeline weights: hub id or local folder (model_index.json)")
    steps: int = Field(50, ge=1, le=1000, validation_alias=STEPS_ALIAS, description="Denoising steps")
    guidance: float = Field(2.5, ge=0.0, validation_alias=GUIDANCE_ALIAS,
                            description="Text guidance scale (the paper: 2.5)")
    img_guidance: float = Field(1.6, ge=0.0,
                                validation_alias=AliasChoices("img_guidance", "img_guidance_scale"),
                                description="Image guidance scale (the paper: 1.6)")
    max_input_image_size: int = Field(1024, ge=16, le=4096,
                                      description="References are scaled down to at most this side "
                                                  "(each 16x16 pixel patch is one token)")


class OmniGenGenerator(DiffusersGenerator[OmniGenOptions]):
    name = "omnigen"
    description = ("OmniGen: up to 3 reference images in context, written into the prompt as "
                   "<img><|image_i|></img>; guidance 2.5, image guidance 1.6, 1024x1024.")
    extra = "omnigen"
    gpu_dtype = "bfloat16"

    @property
    def capabilities(self) -> GeneratorCapabilities:
        return GeneratorCapabilities(max_references=3, conditioning="in_context", uses_captions=True,
                                     image_placeholder=PLACEHOLDER)

    def build(self, device: str, dtype: str) -> LoadedPipeline:
        torch, diffusers = import_diffusers(self.extra)
        pipeline_cls = diffusers_class(diffusers, "OmniGenPipeline", self.extra)
        model = self.sources()["model"]
        with translate_errors("the OmniGen pipeline", model, extra=self.extra, generator=self.name):
            import torchvision  # noqa: F401  (OmniGen's image processor needs it)
            pipe = pipeline_cls.from_pretrained(model, variant=self.options.variant,
                                                **dtype_kwarg(diffusers, getattr(torch, dtype)))
        pipe.set_progress_bar_config(disable=True)
        self.place(pipe, device)
        return LoadedPipeline(pipe=pipe, device=device, dtype=dtype)

    def run(self, entry: LoadedPipeline, prompt: str, references: list[Reference],
            generator: Any) -> Image.Image:
        o = self.options
        prompt = with_placeholders(prompt, references)
        images = [ref.open() for ref in references]
        output = entry.pipe(prompt=prompt, input_images=images or None, height=o.height, width=o.width,
                            num_inference_steps=o.steps, guidance_scale=o.guidance,
                            img_guidance_scale=o.img_guidance,
                            max_input_image_size=o.max_input_image_size, generator=generator)
        return self.first_image(output)


def with_placeholders(prompt: str, references: list[Reference]) -> str:
    """Check that ``prompt`` names images 1..n exactly once each for n references.

    A prompt with references but no placeholder at all (a direct call that skipped the core's
    template) gets the paper's template around it; any other mismatch is an error, because
    OmniGen would otherwise fail deep inside its processor or silently drop an image."""
    found = [int(m) for m in _TAG.findall(prompt)]
    n = len(references)
    if not found and n:
        parts = ", ".join(f"{ref.caption or 'this image'}: {PLACEHOLDER.format(i=i)}"
                          for i, ref in enumerate(references, start=1))
        return f"According to these examples of {parts}, generate {prompt}"
    if sorted(found) != list(range(1, n + 1)):
        raise ImageRAGError(
            f"omnigen: the prompt names images {sorted(found)} but {n} reference(s) were given",
            hint=f"write image i as {PLACEHOLDER.format(i='i')}, once each for i = 1..{n}")
    return prompt
