"""The shipped profiles that describe the paper's setup ask the paper's critic protocol."""

from __future__ import annotations

import pytest

from imagerag_sdk.profiles import load_profile


@pytest.mark.parametrize("name", ["omnigen-gpt", "sdxl-gpt", "flux-gpt"])
def test_paper_profiles_use_the_paper_protocol(name):
    openai = pytest.importorskip("imagerag_openai")
    critic = load_profile(name).critic
    assert critic is not None and critic.use == "openai"
    options = openai.OpenAICritic.Options.model_validate({**critic.options(), "api_key": "sk-test"})
    assert options.protocol == "paper" and options.model == "gpt-4o-2024-08-06" and options.temperature == 0
