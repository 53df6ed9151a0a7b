"""``flux``: FLUX for the first pass, an image-conditioned FLUX pipeline on the same components
for the reference pass.

* ``conditioning: redux`` (default): FLUX.1 schnell + the FLUX.1 Redux prior. The prior turns the
  reference into extra text-encoder tokens (SigLIP + a small projector) that are appended to the
  prompt's T5 tokens; the same ``FluxPipeline`` then runs on those embeddings. The prior is built
  with the base pipeline's text encoders, so nothing is loaded twice.
* ``conditioning: kontext``: FLUX.1 Kontext [dev], where the reference's latents join the image
  tokens. ``FluxKontextPipeline.from_pipe(base)`` shares every module with the first-pass
  pipeline. Kontext needs Kontext weights: the first pass runs on them too.

OminiControl, the paper's method, is not part of diffusers; see docs/generators/flux.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from typing import Any, Literal

from PIL import Image
from pydantic import Field, field_validator

from imagerag_sdk.types import GeneratorCapabilities, Reference

from .base import GUIDANCE_ALIAS, STEPS_ALIAS, DiffusersGenerator, DiffusersOptions, LoadedPipeline
from .loading import diffusers_class, dtype_kwarg, import_diffusers, resolve_source, translate_errors

DEFAULT_MODELS = {"redux": "black-forest-labs/FLUX.1-schnell",
                  "kontext": "black-forest-labs/FLUX.1-Kontext-dev"}


class FluxOptions(DiffusersOptions):
    model: str | None = Field(None, description="FLUX pipeline weights: hub id or local folder; None = "
                                                "FLUX.1-schnell for redux, FLUX.1-Kontext-dev for kontext")
    conditioning: Literal["redux", "kontext"] = Field(
        "redux", description="How the reference pass sees the reference: redux (image tokens from the "
                             "Redux prior, works with schnell) or kontext (needs Kontext weights)")
    redux: str = Field("black-forest-labs/FLUX.1-Redux-dev",
                       description="FLUX Redux prior (image encoder + projector): hub id or local folder")
    redux_strength: float = Field(1.0, ge=0.0, le=2.0,
                                  description="Scale of the reference's Redux tokens against the text's "
                                              "(below 1 lets the prompt say more)")
    reference_prompt: str = Field("{prompt}", description="Prompt of the reference pass; {prompt} and "
                                                          "{caption} (the reference's caption) are filled in")
    steps: int | None = Field(None, ge=1, le=1000, validation_alias=STEPS_ALIAS,
                              description="Denoising steps; None = 4 for a distilled model without "
                                          "guidance input (schnell), else 28")
    guidance: float | None = Field(None, ge=0.0, validation_alias=GUIDANCE_ALIAS,
                                   description="Guidance; None = 0 for schnell (unused), 2.5 for "
                                               "kontext, else 3.5")
    max_sequence_length: int | None = Field(None, ge=16, le=512,
                                            description="T5 prompt tokens; None = 256 for schnell, else 512")

    @field_validator("reference_prompt")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(prompt="p", caption="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"reference_prompt may only use {{prompt}} and {{caption}}: {exc}") from exc
        return value


class FluxGenerator(DiffusersGenerator[FluxOptions]):
    name = "flux"
    description = ("FLUX.1 (schnell by default) for the first pass; one reference image through FLUX "
                   "Redux (default) or FLUX Kontext on the same components for the reference pass.")
    extra = "flux"
    gpu_dtype = "bfloat16"

    @property
    def capabilities(self) -> GeneratorCapabilities:
        kontext = self.options.conditioning == "kontext"
        return GeneratorCapabilities(max_references=1, conditioning="in_context" if kontext else "adapter",
                                     uses_captions=False, image_placeholder="")

    @property
    def model(self) -> str:
        return self.options.model or DEFAULT_MODELS[self.options.conditioning]

    def cache_key(self) -> tuple[Hashable, ...]:
        o = self.options
        return (o.variant, o.conditioning)

    def sources(self) -> dict[str, str]:
        out = {"model": resolve_source(self.model, "flux model")}
        if self.options.conditioning == "redux":
            out["redux"] = resolve_source(self.options.redux, "flux redux")
        return out

    def build(self, device: str, dtype: str) -> LoadedPipeline:
        torch, diffusers = import_diffusers(self.extra)
        o = self.options
        torch_dtype = getattr(torch, dtype)
        base_cls = diffusers_class(diffusers, "FluxPipeline", self.extra)
        src = self.sources()
        model = src["model"]
        with translate_errors("the FLUX pipeline", model, extra=self.extra, generator=self.name):
            pipe = base_cls.from_pretrained(model, variant=o.variant, **dtype_kwarg(diffusers, torch_dtype))
        if o.conditioning == "kontext":
            kontext_cls = diffusers_class(diffusers, "FluxKontextPipeline", self.extra)
            # torch_dtype matters: from_pipe casts the (shared) modules to it, float32 if left out
            ref_pipe = kontext_cls.from_pipe(pipe, **dtype_kwarg(diffusers, torch_dtype))
        else:
            prior_cls = diffusers_class(diffusers, "FluxPriorReduxPipeline", self.extra)
            redux = src["redux"]
            with translate_errors("the FLUX Redux prior", redux, extra=self.extra, generator=self.name):
                # without text encoders the prior ignores the prompt and assumes 4096-wide T5 tokens
                ref_pipe = prior_cls.from_pretrained(
                    redux, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                    text_encoder_2=pipe.text_encoder_2, tokenizer_2=pipe.tokenizer_2,
                    **dtype_kwarg(diffusers, torch_dtype))
        for p in (pipe, ref_pipe):
            p.set_progress_bar_config(disable=True)
        self.place(pipe, device)
        if o.conditioning == "redux":
            if self.offloading(device):  # the base's offload hooks move the shared text encoders
                ref_pipe.image_encoder.to(device)
                ref_pipe.image_embedder.to(device)
            else:
                ref_pipe.to(device)
        schnell = not bool(getattr(pipe.transformer.config, "guidance_embeds", False))
        if schnell and o.conditioning == "kontext":
            warnings.warn(f"flux: conditioning 'kontext' on '{model}', a transformer without guidance "
                          "embedding (schnell-like); Kontext references need FLUX.1-Kontext-dev weights",
                          stacklevel=2)
        return LoadedPipeline(pipe=pipe, device=device, dtype=dtype,
                              parts={"reference": ref_pipe, "schnell": schnell})

    def settings(self, entry: LoadedPipeline) -> dict[str, Any]:
        """Steps, guidance and prompt length after the model-dependent defaults."""
        o, schnell = self.options, entry.parts["schnell"]
        guidance = o.guidance
        if guidance is None:
            guidance = 0.0 if schnell else (2.5 if o.conditioning == "kontext" else 3.5)
        return {"num_inference_steps": o.steps or (4 if schnell else 28), "guidance_scale": guidance,
                "max_sequence_length": o.max_sequence_length or (256 if schnell else 512)}

    def run(self, entry: LoadedPipeline, prompt: str, references: list[Reference],
            generator: Any) -> Image.Image:
        o = self.options
        pipe, settings = entry.pipe, self.settings(entry)
        size = {"width": o.width, "height": o.height, "generator": generator}
        if not references:
            return self.first_image(pipe(prompt=prompt, **settings, **size))
        ref = references[0]
        text = o.reference_prompt.format(prompt=prompt, caption=ref.caption or prompt)
        image = ref.open()
        try:
            if o.conditioning == "kontext":
                image = fit_area(image, o.width * o.height, multiple=pipe.vae_scale_factor * 2)
                # max_area + _auto_resize=False keep our size; otherwise Kontext goes to ~1024²
                output = entry.parts["reference"](image=image, prompt=text, max_area=o.width * o.height,
                                                  _auto_resize=False, **settings, **size)
            else:
                output = self._redux(entry, text, image, settings, size)
        finally:
            if self.offloading(entry.device):
                pipe.maybe_free_model_hooks()
        return self.first_image(output)

    def _redux(self, entry: LoadedPipeline, text: str, image: Image.Image,
               settings: dict[str, Any], size: dict[str, Any]) -> Any:
        import torch

        pipe, prior = entry.pipe, entry.parts["reference"]
        length = settings.pop("max_sequence_length")
        prompt_embeds, pooled, _ = pipe.encode_prompt(prompt=text, prompt_2=None,
                                                      device=pipe._execution_device,
                                                      max_sequence_length=length)
        prior_out = prior(image=image, prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled)
        embeds = prior_out.prompt_embeds
        if self.options.redux_strength != 1.0:  # the first `length` tokens are the text's
            embeds = torch.cat([embeds[:, :length], embeds[:, length:] * self.options.redux_strength], dim=1)
        return pipe(prompt_embeds=embeds, pooled_prompt_embeds=prior_out.pooled_prompt_embeds,
                    **settings, **size)


def fit_area(image: Image.Image, area: int, *, multiple: int) -> Image.Image:
    """Resize to about ``area`` pixels, keeping the aspect ratio, sides a multiple of ``multiple``."""
    aspect = image.width / image.height
    width = max(multiple, round((area * aspect) ** 0.5) // multiple * multiple)
    height = max(multiple, round((area / aspect) ** 0.5) // multiple * multiple)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)
