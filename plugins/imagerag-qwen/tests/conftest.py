"""Session fixtures for the qwen plugin's tests (names prefixed ``qwen_``)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def qwen_tiny_dir(tmp_path_factory) -> str:
    """A tiny random Qwen2.5-VL written once per session through save_pretrained."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    pytest.importorskip("transformers")
    pytest.importorskip("torchvision")
    from imagerag_qwen.tiny import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("qwen-tiny") / "model")
