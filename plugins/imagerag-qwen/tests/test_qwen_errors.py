"""Clear errors: missing folder, hub id offline, missing libraries, GPU out of memory."""

from __future__ import annotations

import sys

import pytest
from PIL import Image

from imagerag_qwen import QwenCritic
from imagerag_qwen import critic as qwen_module
from imagerag_sdk.critique import VLMRequest
from imagerag_sdk.errors import ConfigError, MissingDependencyError, ProviderError


def test_qwen_missing_local_folder(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError) as err:
        QwenCritic(model=str(missing), device="cpu").load()
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)


def test_qwen_folder_without_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        QwenCritic(model=str(tmp_path), device="cpu").load()


def test_qwen_hub_id_offline_not_cached(monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    critic = QwenCritic(model="imagerag-tests/not-a-cached-qwen", device="cpu")
    with pytest.raises(ConfigError) as err:
        critic.load()
    text = str(err.value)
    assert "HF_HUB_OFFLINE" in text and "local folder" in text


@pytest.mark.parametrize("env,named", [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
                                       ({"TRANSFORMERS_OFFLINE": "yes"}, "TRANSFORMERS_OFFLINE=yes"),
                                       ({"HF_HUB_OFFLINE": "0"}, None)])
def test_qwen_hub_error_names_the_offline_setting(monkeypatch, env, named):
    """The message follows huggingface_hub's reading of the offline variables (no model loaded)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    error = qwen_module._load_error("imagerag-tests/not-a-cached-qwen", False, OSError("not found"))
    if named:
        assert named in str(error) and "local Hugging Face cache" in str(error)
    else:
        assert "offline" not in str(error).lower() and "from the Hugging Face hub" in str(error)


@pytest.mark.parametrize("library", ["transformers", "torch"])
def test_qwen_missing_library(monkeypatch, library):
    monkeypatch.setitem(sys.modules, library, None)  # makes `import library` fail
    with pytest.raises(MissingDependencyError) as err:
        QwenCritic(model="/nowhere", device="cpu").load()
    assert "pip install 'imagerag-sdk[qwen]'" in str(err.value)


def test_qwen_cuda_asked_without_cuda(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        QwenCritic(model="/nowhere", device="cuda").load()


@pytest.mark.slow
def test_qwen_out_of_memory_has_a_hint(qwen_tiny_dir, monkeypatch):
    import torch

    critic = QwenCritic(model=qwen_tiny_dir, device="cpu", max_new_tokens=4)
    critic.load()

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(critic._loaded_model.model, "generate", boom)
    with pytest.raises(ProviderError) as err:
        critic.ask(VLMRequest(text="Does it match?", images=(Image.new("RGB", (32, 32)),)))
    assert err.value.provider == "qwen"
    assert "max_pixels" in str(err.value) and "3B" in str(err.value)


@pytest.mark.slow
def test_qwen_out_of_memory_while_loading(qwen_tiny_dir, monkeypatch):
    import torch
    import transformers

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 16.00 GiB")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", boom)
    critic = QwenCritic(model=qwen_tiny_dir, device="cpu", dtype="float16")
    with pytest.raises(ProviderError, match="loading") as err:
        critic.load()
    assert "3B" in str(err.value) and not critic.loaded


@pytest.mark.slow
def test_qwen_schema_request_without_json_wording(qwen_tiny_dir, monkeypatch):
    critic = QwenCritic(model=qwen_tiny_dir, device="cpu", max_new_tokens=2)
    critic.load()
    seen = []
    real = critic._loaded_model.processor.apply_chat_template

    def spy(messages, **kwargs):
        seen.append(messages[-1]["content"][-1]["text"])
        return real(messages, **kwargs)

    monkeypatch.setattr(critic._loaded_model.processor, "apply_chat_template", spy)
    schema = {"type": "object", "properties": {"best": {"type": "integer"}}}
    critic.ask(VLMRequest(text="Which image fits best?", json_schema=schema))
    critic.ask(VLMRequest(text="Answer only with JSON.", json_schema=schema))
    assert '"best"' in seen[0] and "JSON Schema" in seen[0]
    assert seen[1] == "Answer only with JSON."
