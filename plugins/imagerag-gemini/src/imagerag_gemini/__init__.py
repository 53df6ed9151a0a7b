"""imagerag-gemini: the ``gemini`` critic and the ``gemini-image`` generator (google-genai).

Importing this package does not import google-genai; the components import it in ``load()``.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .critic import GeminiCritic, GeminiCriticOptions
from .image_generator import GeminiImageGenerator, GeminiImageOptions

__all__ = ["GeminiCritic", "GeminiCriticOptions", "GeminiImageGenerator", "GeminiImageOptions"]


@hookimpl
def register_critics(register):
    register(GeminiCritic)


@hookimpl
def register_generators(register):
    register(GeminiImageGenerator)


@hookimpl
def heavy_imports():
    return ["google.genai"]
