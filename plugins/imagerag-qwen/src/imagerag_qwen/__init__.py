"""imagerag-qwen: a local Qwen2.5-VL critic (transformers). Importing this module is light."""

from imagerag_sdk import hookimpl

from .critic import QwenCritic, QwenOptions

__all__ = ["QwenCritic", "QwenOptions"]


@hookimpl
def register_critics(register):
    register(QwenCritic)


@hookimpl
def heavy_imports():
    return ["torch", "transformers"]
