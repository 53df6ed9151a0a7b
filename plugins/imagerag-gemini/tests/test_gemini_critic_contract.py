"""The shared provider battery, run with the real google-genai client against the fake server."""

from __future__ import annotations

import base64
import io

from PIL import Image

from imagerag_sdk.testing.provider_contract import ProviderCriticContract

from imagerag_gemini import GeminiCritic


def gemini_inline_images(body) -> list[Image.Image]:
    """Images in a generateContent body. google-genai writes inline data as URL-safe base64,
    which the contract's standard-alphabet decoder rejects, so decode it here."""
    out: list[Image.Image] = []
    for content in (body or {}).get("contents", []):
        for part in content.get("parts", []):
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                img = Image.open(io.BytesIO(base64.urlsafe_b64decode(blob["data"])))
                img.load()
                out.append(img)
    return out


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

    def sent_image_list(self, request):
        return gemini_inline_images(request.json)
