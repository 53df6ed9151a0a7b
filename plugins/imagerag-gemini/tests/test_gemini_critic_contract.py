"""The shared provider battery, run with the real google-genai client against the fake server."""

from __future__ import annotations

import pytest

from imagerag_gemini import GeminiCritic
from imagerag_sdk.testing.contracts import CriticContract
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import ProviderCriticContract


class TestGeminiCriticContract(ProviderCriticContract):
    provider = "gemini"
    api_key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    temperature_options = {"model": "gemini-2.5-flash"}
    no_temperature_options = {"model": "gemini-2.5-flash", "send_temperature": "never"}

    def make_critic(self, server, **options):
        options.setdefault("api_key", self.fake_api_key)
        options.setdefault("retry_initial_delay", 0.01)
        return GeminiCritic(base_url=server.url, **options)

    def retry_options(self, retries):
        return {"max_retries": retries, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}


class TestGeminiCriticRole(CriticContract):
    """The role contract every critic meets (the fake server answers a fused JSON object)."""

    @pytest.fixture
    def component(self):
        with FakeAPIServer() as server:
            server.set_default(json_data={"matches": False, "missing": [
                {"concept": "a sheep", "caption": "a photo of a sheep on grass"}]})
            yield GeminiCritic(api_key="AIza-role-test", base_url=server.url)
