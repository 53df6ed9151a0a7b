"""Options, registration and import weight of the qwen critic (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from imagerag_qwen import QwenCritic
from imagerag_qwen.critic import DEFAULT_MODEL, QwenOptions


def test_qwen_import_is_light():
    code = ("import sys, json, imagerag_qwen\n"
            "print(json.dumps([m for m in ('torch', 'transformers', 'torchvision') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_qwen_defaults_follow_the_paper_setup():
    opts = QwenOptions()
    assert opts.model == DEFAULT_MODEL == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (opts.device, opts.dtype, opts.temperature) == ("auto", "auto", 0.0)
    critic = QwenCritic()
    assert critic.effective_protocol == "three_step"  # no native structured output
    assert not critic.loaded


@pytest.mark.parametrize("bad", [
    {"device": "tpu"},
    {"dtype": "int8"},
    {"max_new_tokens": 0},
    {"min_pixels": 5000, "max_pixels": 4000},
    {"unknown": 1},
])
def test_qwen_rejects_bad_options(bad):
    with pytest.raises(ValidationError):
        QwenOptions(**bad)


def test_qwen_device_forms():
    assert QwenOptions(device="CUDA:1").device == "cuda:1"
    assert QwenOptions(device="cpu").device == "cpu"


def test_qwen_every_option_documented():
    for name, field in QwenOptions.model_fields.items():
        assert field.description, name


def test_qwen_is_registered(imagerag_registry):
    reg = imagerag_registry.get("critic", "qwen")
    assert reg.cls is QwenCritic
    assert reg.distribution == "imagerag-qwen"
    critic = imagerag_registry.build("critic", "qwen", {"model": "/nowhere", "protocol": "fused"})
    assert isinstance(critic, QwenCritic) and critic.effective_protocol == "fused"
    json.dumps(critic.describe())


def test_qwen_ladder_gives_every_attempt_its_own_seed():
    critic = QwenCritic(temperature=0.0, temperature_step=0.3)
    steps = [critic.ladder(i) for i in range(4)]
    assert [round(t, 2) for t, _, _ in steps] == [0.0, 0.3, 0.6, 0.9]
    assert [s for _, _, s in steps] == [0, 1, 2, 3]
