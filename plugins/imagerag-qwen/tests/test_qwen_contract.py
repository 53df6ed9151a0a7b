"""The core's critic contract, run against the qwen critic on the tiny model."""

from __future__ import annotations

import pytest

from imagerag_qwen import QwenCritic

contracts = pytest.importorskip("imagerag_sdk.testing.contracts")


@pytest.mark.slow
class TestQwenCriticContract(contracts.CriticContract):
    @pytest.fixture
    def component(self, qwen_tiny_dir):
        return QwenCritic(model=qwen_tiny_dir, device="cpu", max_new_tokens=8, retries=1)


@pytest.mark.gpu
@pytest.mark.slow
def test_qwen_tiny_on_cuda(qwen_tiny_dir):
    """device/dtype auto pick CUDA + bfloat16, and seeded sampling stays reproducible there."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from PIL import Image

    from imagerag_sdk.critique import VLMRequest

    critic = QwenCritic(model=qwen_tiny_dir, max_new_tokens=8)
    critic.load()
    assert critic._loaded_model.device == "cuda"
    assert next(critic._loaded_model.model.parameters()).dtype == torch.bfloat16
    req = VLMRequest(text="Does it match?", images=(Image.new("RGB", (64, 64)),), temperature=1.0, seed=3)
    assert critic.ask(req).text == critic.ask(req).text
    result = critic.critique("a red bicycle", Image.new("RGB", (64, 64)))
    assert result.exchanges
