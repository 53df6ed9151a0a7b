"""imagerag-diffusers: local diffusion generators for imagerag-sdk.

* ``omnigen`` — OmniGen, up to 3 references in context (``<img><|image_i|></img>`` in the prompt)
* ``sdxl``    — SDXL + IP-Adapter plus ViT-H, one reference at scale 0.5
* ``flux``    — FLUX.1 schnell, one reference through FLUX Redux (or FLUX Kontext)

Importing this package is cheap: torch, diffusers and transformers are imported when a generator
loads. Pipelines are cached per process (:mod:`imagerag_sdk.model_cache`, kind = generator name); tiny random-weight
pipelines for offline tests are built by :mod:`imagerag_diffusers.tiny`.
"""

from __future__ import annotations

from importlib import resources

from imagerag_sdk import hookimpl

from .flux import FluxGenerator
from .omnigen import OmniGenGenerator
from .sdxl import SDXLGenerator

__all__ = ["FluxGenerator", "OmniGenGenerator", "SDXLGenerator"]


@hookimpl
def register_generators(register):
    """Register the omnigen, sdxl and flux generators."""
    register(OmniGenGenerator)
    register(SDXLGenerator)
    register(FluxGenerator)


@hookimpl
def heavy_imports():
    return ["torch", "diffusers", "transformers"]


@hookimpl
def register_profiles(register):
    """The paper's pipelines on these generators: sdxl-gpt, omnigen-gpt, flux-gpt, sdxl-qwen."""
    for path in sorted((resources.files(__package__) / "profiles").iterdir(), key=str):
        if path.name.endswith(".yaml"):
            register(path)
