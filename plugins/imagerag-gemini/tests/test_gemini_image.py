"""The gemini-image generator with the real google-genai client against the fake server."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from imagerag_gemini import GeminiImageGenerator
from imagerag_sdk.errors import ConfigError, ProviderError, RateLimitError
from imagerag_sdk.testing.contracts import GeneratorContract
from imagerag_sdk.testing.fake_server import FakeAPIServer, images_from_references
from imagerag_sdk.types import Reference

KEY = "AIza-imagerag-image-key"


def png_b64(color=(10, 200, 30), size=(48, 32)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def inline_blobs(request):
    return [p["inlineData"] for p in request.json["contents"][0]["parts"] if "inlineData" in p]


def decode_blob(blob) -> Image.Image:
    return Image.open(io.BytesIO(base64.urlsafe_b64decode(blob["data"])))


@pytest.fixture
def gemini_image_server():
    with FakeAPIServer() as server:
        yield server


@pytest.fixture
def gemini_refs(tmp_path):
    refs = []
    for i, color in enumerate([(255, 0, 0), (0, 0, 255), (0, 128, 0)], start=1):
        path = tmp_path / f"ref{i}.png"
        Image.new("RGB", (2000, 1000), color).save(path)
        refs.append(Reference(path=str(path), caption=f"caption {i}"))
    return refs


def generator(server, **options):
    options.setdefault("retry_initial_delay", 0.01)
    return GeminiImageGenerator(api_key=KEY, base_url=server.url, **options)


def test_text_only_generation(gemini_image_server):
    gemini_image_server.reply(images_b64=[png_b64()])
    img = generator(gemini_image_server).generate("a red bicycle", seed=5)
    assert img.size == (48, 32) and img.mode == "RGB" and img.getpixel((0, 0)) == (10, 200, 30)
    req = gemini_image_server.requests[0]
    assert req.path.endswith("/models/gemini-2.5-flash-image:generateContent")
    assert req.json["contents"][0]["parts"] == [{"text": "a red bicycle"}]
    conf = req.json["generationConfig"]
    assert "IMAGE" in conf["responseModalities"] and conf["seed"] == 5


def test_references_go_in_context_labelled(gemini_image_server, gemini_refs):
    gemini_image_server.reply("Here is your image", images_b64=[png_b64()])
    gen = generator(gemini_image_server, max_image_side=256)
    prompt = "According to these examples of caption 1: <image 1>, caption 2: <image 2>, generate a cat"
    gen.generate(prompt, gemini_refs[:2], seed=0)
    parts = gemini_image_server.requests[0].json["contents"][0]["parts"]
    assert [p.get("text") for p in parts] == ["<image 1>:", None, "<image 2>:", None, prompt]
    imgs = [decode_blob(b) for b in inline_blobs(gemini_image_server.requests[0])]
    assert [im.size for im in imgs] == [(256, 128), (256, 128)]
    assert imgs[0].convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    assert imgs[1].convert("RGB").getpixel((5, 5)) == (0, 0, 255)


def test_unlabelled_references(gemini_image_server, gemini_refs):
    gemini_image_server.reply(images_b64=[png_b64()])
    generator(gemini_image_server, label_references=False).generate("p", gemini_refs[:1])
    parts = gemini_image_server.requests[0].json["contents"][0]["parts"]
    assert len(parts) == 2 and "inlineData" in parts[0] and parts[1] == {"text": "p"}


def test_aspect_ratio_sent(gemini_image_server):
    gemini_image_server.reply(images_b64=[png_b64()])
    generator(gemini_image_server, aspect_ratio="16:9").generate("p")
    assert gemini_image_server.requests[0].json["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"


def test_too_many_references_refused_before_any_request(gemini_image_server, gemini_refs):
    with pytest.raises(ConfigError, match="at most 2"):
        generator(gemini_image_server, max_references=2).generate("p", gemini_refs)
    assert gemini_image_server.requests == []


def test_no_image_in_answer_is_a_provider_error(gemini_image_server):
    gemini_image_server.reply("I cannot draw that.")
    gen = generator(gemini_image_server)
    with pytest.raises(ProviderError, match="returned no image.*cannot draw that"):
        gen.generate("p")
    assert gen.last_text == "I cannot draw that."


def test_rate_limit_retried_then_mapped(gemini_image_server):
    gemini_image_server.set_default("quota", status=429)
    with pytest.raises(RateLimitError, match="gemini"):
        generator(gemini_image_server, max_retries=1).generate("p")
    assert len(gemini_image_server.requests) == 2


def test_capabilities_and_usage(gemini_image_server):
    gen = generator(gemini_image_server, max_references=5)
    caps = gen.capabilities
    assert caps.max_references == 5 and caps.conditioning == "in_context" and caps.uses_captions
    assert caps.image_placeholder.format(i=2) == "<image 2>"
    gemini_image_server.reply(images_b64=[png_b64()], usage={"promptTokenCount": 300,
                                                             "candidatesTokenCount": 1290})
    gen.generate("p")
    assert gen.last_usage == {"input_tokens": 300, "output_tokens": 1290}


class TestGeminiImageContract(GeneratorContract):
    @pytest.fixture
    def component(self, gemini_image_server):
        gemini_image_server.set_default(images_b64=images_from_references)  # a model that sees its references
        return generator(gemini_image_server)


def test_server_error_names_the_real_request_count(gemini_image_server):
    gemini_image_server.set_default("overloaded", status=503)
    with pytest.raises(ProviderError) as err:
        generator(gemini_image_server, max_retries=1).generate("p")
    assert len(gemini_image_server.requests) == 2 and "after 2 requests" in str(err.value)


def test_an_html_page_is_a_malformed_reply(gemini_image_server):
    from imagerag_sdk.errors import MalformedReplyError

    gemini_image_server.set_default(malformed="html")
    with pytest.raises(MalformedReplyError, match="HTML page"):
        generator(gemini_image_server).generate("p")
