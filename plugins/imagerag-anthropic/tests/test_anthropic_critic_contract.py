"""The shared provider battery, run with the real anthropic client against the fake server."""

from __future__ import annotations

from imagerag_sdk.testing.provider_contract import ProviderCriticContract

from imagerag_anthropic import AnthropicCritic


class TestAnthropicCriticContract(ProviderCriticContract):
    provider = "anthropic"
    api_key_envs = ("ANTHROPIC_API_KEY",)
    temperature_options = {"model": "claude-sonnet-4-6"}
    no_temperature_options = {"model": "claude-opus-4-7"}

    def make_critic(self, server, **options):
        options.setdefault("api_key", self.fake_api_key)
        return AnthropicCritic(base_url=server.url, **options)
