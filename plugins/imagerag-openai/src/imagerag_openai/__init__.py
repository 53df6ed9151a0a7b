"""imagerag-openai: the ``openai`` critic and the ``gpt-image`` generator.

Importing this module is cheap: the ``openai`` SDK is imported only when a component loads.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .critic import OpenAICritic, OpenAICriticOptions
from .gpt_image import GPTImageGenerator, GPTImageOptions

__all__ = ["GPTImageGenerator", "GPTImageOptions", "OpenAICritic", "OpenAICriticOptions"]


@hookimpl
def register_critics(register):
    register(OpenAICritic)


@hookimpl
def register_generators(register):
    register(GPTImageGenerator)


@hookimpl
def heavy_imports():
    return ["openai"]
