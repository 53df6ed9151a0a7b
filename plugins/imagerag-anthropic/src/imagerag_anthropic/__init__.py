"""imagerag-anthropic: the ``anthropic`` critic (Claude through the messages API).

Importing this package does not import the anthropic SDK; the critic imports it in ``load()``.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .critic import AnthropicCritic, AnthropicCriticOptions
from .models import accepts_temperature

__all__ = ["AnthropicCritic", "AnthropicCriticOptions", "accepts_temperature"]


@hookimpl
def register_critics(register):
    register(AnthropicCritic)


@hookimpl
def heavy_imports():
    return ["anthropic"]
