"""The shared provider battery, run with the real anthropic client against the fake server."""

from __future__ import annotations

import pytest

from imagerag_anthropic import AnthropicCritic
from imagerag_sdk.testing.contracts import CriticContract
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import ProviderCriticContract


class TestAnthropicCriticContract(ProviderCriticContract):
    provider = "anthropic"
    api_key_envs = ("ANTHROPIC_API_KEY",)
    temperature_options = {"model": "claude-sonnet-4-6"}
    no_temperature_options = {"model": "claude-opus-4-7"}

    def make_critic(self, server, **options):
        options.setdefault("api_key", self.fake_api_key)
        return AnthropicCritic(base_url=server.url, **options)


class TestAnthropicCriticRole(CriticContract):
    """The role contract every critic meets (the fake server answers through the forced tool)."""

    @pytest.fixture
    def component(self):
        with FakeAPIServer() as server:
            server.set_default(json_data={"matches": False, "missing": [
                {"concept": "a sheep", "caption": "a photo of a sheep on grass"}]})
            yield AnthropicCritic(api_key="sk-ant-role-test", base_url=server.url)
