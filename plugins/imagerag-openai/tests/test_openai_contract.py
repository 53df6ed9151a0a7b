"""The shared provider-critic battery, run with the real openai client against the fake server."""

from __future__ import annotations

from imagerag_openai import OpenAICritic
from imagerag_sdk.testing.provider_contract import ProviderCriticContract


class TestOpenAIProviderContract(ProviderCriticContract):
    provider = "openai"
    api_key_envs = ("OPENAI_API_KEY",)
    temperature_options = {"model": "gpt-4o-2024-08-06"}
    no_temperature_options = {"model": "gpt-5"}

    def make_critic(self, server, **options):
        options.setdefault("api_key", self.fake_api_key)
        return OpenAICritic(base_url=server.url + "/v1", **options)
