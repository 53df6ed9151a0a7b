"""The ``gpt-image`` generator with the real openai client against the fake server."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from imagerag_openai import GPTImageGenerator
from imagerag_sdk.errors import AuthenticationError, ConfigError, ProviderError
from imagerag_sdk.testing.contracts import GeneratorContract
from imagerag_sdk.testing.fake_server import FakeAPIServer, images_from_references
from imagerag_sdk.types import Reference

KEY = "sk-gpt-image-test-key"


def png_b64(color, size=(48, 32)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def gptimage_server():
    with FakeAPIServer() as server:
        yield server


@pytest.fixture
def gptimage_refs(tmp_path):
    refs = []
    for i, (color, size) in enumerate([((200, 0, 0), (2000, 1000)), ((0, 200, 0), (64, 64))]):
        path = tmp_path / f"ref{i}.png"
        Image.new("RGB", size, color).save(path)
        refs.append(Reference(path=str(path), caption=f"caption {i}"))
    return refs


def generator(server, **options):
    options.setdefault("api_key", KEY)
    return GPTImageGenerator(base_url=server.url + "/v1", **options)


def multipart_parts(req) -> list:
    head = f"content-type: {req.headers['content-type']}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(head + req.body)
    return list(msg.iter_parts())


def test_text_only_uses_images_generate(gptimage_server):
    gptimage_server.reply(images_b64=[png_b64((10, 20, 30))])
    img = generator(gptimage_server, size="1536x1024", quality="low").generate("a red bicycle", seed=1)
    assert img.size == (48, 32) and img.getpixel((0, 0)) == (10, 20, 30)
    req = gptimage_server.requests[0]
    assert req.path == "/v1/images/generations"
    assert req.json == {"model": "gpt-image-1", "prompt": "a red bicycle", "n": 1,
                        "size": "1536x1024", "quality": "low"}


def test_references_are_uploaded_to_images_edit(gptimage_server, gptimage_refs):
    gptimage_server.reply(images_b64=[png_b64((1, 2, 3))])
    gen = generator(gptimage_server, reference_max_side=256, input_fidelity="high")
    img = gen.generate("According to these examples of caption 0: <image 1>, caption 1: <image 2>, "
                       "generate a bird", gptimage_refs)
    assert img.getpixel((0, 0)) == (1, 2, 3)
    req = gptimage_server.requests[0]
    assert req.path == "/v1/images/edits"
    parts = multipart_parts(req)
    fields = {p.get_param("name", header="content-disposition"): p for p in parts}
    assert fields["prompt"].get_content().startswith("According to these examples")
    assert fields["model"].get_content() == "gpt-image-1"
    assert fields["input_fidelity"].get_content() == "high"
    uploads = [Image.open(io.BytesIO(p.get_content())) for p in parts if p.get_filename()]
    assert [u.format for u in uploads] == ["PNG", "PNG"]
    assert uploads[0].size == (256, 128) and uploads[1].size == (64, 64)  # downscaled, not upscaled
    assert uploads[0].getpixel((5, 5)) == (200, 0, 0) and uploads[1].getpixel((5, 5)) == (0, 200, 0)
    assert gen.last_usage and gen.last_usage["total_tokens"] == 15


def test_capabilities():
    caps = GPTImageGenerator(max_references=5).capabilities
    assert caps.max_references == 5 and caps.conditioning == "in_context" and caps.uses_captions
    with pytest.raises(ValidationError, match="max_references"):
        GPTImageGenerator(max_references=17)


def test_too_many_references(gptimage_server, gptimage_refs):
    with pytest.raises(ConfigError, match="at most 1"):
        generator(gptimage_server, max_references=1).generate("x", gptimage_refs)
    assert gptimage_server.requests == []


def test_bad_key(gptimage_server):
    gptimage_server.set_default("Incorrect API key", status=401)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        generator(gptimage_server, max_retries=0).generate("x")


def test_missing_key(gptimage_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        generator(gptimage_server, api_key=None).generate("x")


def test_no_image_in_answer(gptimage_server):
    gptimage_server.reply(images_b64=[])
    with pytest.raises(ProviderError, match="no image"):
        generator(gptimage_server).generate("x")


def test_rate_limit_then_image(gptimage_server):
    gptimage_server.error(429).reply(images_b64=[png_b64((5, 5, 5))])
    img = generator(gptimage_server, max_retries=1).generate("x")
    assert np.asarray(img)[0, 0].tolist() == [5, 5, 5] and len(gptimage_server.requests) == 2


class TestGPTImageContract(GeneratorContract):
    @pytest.fixture
    def component(self, gptimage_server):
        gptimage_server.set_default(images_b64=images_from_references)  # a model that sees its references
        return generator(gptimage_server)


def test_server_error_names_the_real_request_count(gptimage_server):
    gptimage_server.set_default("the model is overloaded", status=500)
    with pytest.raises(ProviderError) as err:
        generator(gptimage_server, max_retries=1).generate("x")
    assert len(gptimage_server.requests) == 2
    assert "after 2 requests" in str(err.value) and "the model is overloaded" in str(err.value)


def test_an_html_page_is_a_malformed_reply(gptimage_server):
    from imagerag_sdk.errors import MalformedReplyError

    gptimage_server.set_default(malformed="html")
    with pytest.raises(MalformedReplyError, match="HTML page"):
        generator(gptimage_server).generate("x")
