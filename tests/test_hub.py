"""The one reader of the Hugging Face hub's offline setting (imagerag_sdk.hub)."""

from __future__ import annotations

import pytest

from imagerag_sdk import hub


@pytest.mark.parametrize("env,setting", [
    ({}, None),
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "true"}, "HF_HUB_OFFLINE=true"),
    ({"HF_HUB_OFFLINE": "YES"}, "HF_HUB_OFFLINE=YES"),
    ({"HF_HUB_OFFLINE": "On"}, "HF_HUB_OFFLINE=On"),
    ({"HF_HUB_OFFLINE": "0"}, None),
    ({"HF_HUB_OFFLINE": "false"}, None),
    ({"HF_HUB_OFFLINE": "2"}, None),
    ({"HF_HUB_OFFLINE": " 1"}, None),  # huggingface_hub does not strip either
    ({"TRANSFORMERS_OFFLINE": "1"}, "TRANSFORMERS_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "1"}, "TRANSFORMERS_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, None),  # the first set one decides
])
def test_offline_setting_reads_the_variables_as_huggingface_hub_does(monkeypatch, env, setting):
    for name in hub.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hub.offline_setting() == setting
    assert hub.offline() is (setting is not None)


@pytest.mark.parametrize("value", ["1", "true", "Yes", "ON", "0", "no", "", "2", " 1"])
def test_agrees_with_huggingface_hub(monkeypatch, value):
    constants = pytest.importorskip("huggingface_hub.constants")
    is_true = getattr(constants, "_is_true", None)  # private: skip if a release renames it
    if is_true is None:
        pytest.skip("this huggingface_hub has no constants._is_true")
    for name in hub.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline() is is_true(value or None)
