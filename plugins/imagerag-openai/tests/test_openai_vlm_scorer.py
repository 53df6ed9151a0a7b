"""The core's ``vlm`` scorer through the real OpenAI client, against the local fake server."""

from __future__ import annotations

import pytest
from PIL import Image

from imagerag_sdk.errors import MalformedReplyError, ProviderError
from imagerag_sdk.scorer_vlm import QUESTION, SCHEMA, VLMScorer
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.payloads import decode_image_payload
from imagerag_sdk.types import ScoreItem

KEY = "sk-openai-vlm-scorer-test-key"


@pytest.fixture
def server():
    with FakeAPIServer() as s:
        yield s


def scorer(server, **critic):
    critic = {"use": "openai", "api_key": KEY, "base_url": server.url + "/v1", "max_retries": 0, **critic}
    return VLMScorer(critic=critic, concurrency=critic.pop("concurrency", 1))


def items(*concepts):
    return [ScoreItem(prompt=f"A photo of a {c}", image=Image.new("RGB", (40, 30), (30 * i, 90, 200)), concept=c)
            for i, c in enumerate(concepts)]


def test_scores_from_the_answers_in_order(server):
    server.reply("87").reply("Score: 0.9").reply("Yes, it shows one.")
    got = scorer(server).score_detailed(items("albatross", "ramen", "Boeing 737-200"))
    assert [g.value for g in got] == [pytest.approx(0.87), pytest.approx(0.9), 1.0]
    assert [g.detail["answer"] for g in got] == ["87", "Score: 0.9", "Yes, it shows one."]
    assert got[0].detail["usage"]["prompt_tokens"] == 10
    body = server.requests[0].json
    [message] = body["messages"]
    text, image = message["content"]
    assert text == {"type": "text", "text": QUESTION.format(subject="albatross")}
    sent = decode_image_payload(image["image_url"]["url"])
    assert sent is not None and sent.size == (40, 30)
    assert body["temperature"] == 0
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


def test_structured_answer(server):
    server.reply(json_data={"score": 42})
    assert scorer(server).score(items("albatross")) == [pytest.approx(0.42)]


def test_unusable_then_usable_climbs_the_temperature_ladder(server):
    server.reply("I'd rather not say.").reply("65")
    [got] = scorer(server).score_detailed(items("albatross"))
    assert got.value == pytest.approx(0.65) and got.detail["attempts"] == 2
    assert [r.json["temperature"] for r in server.requests] == [0, pytest.approx(0.3)]


def test_malformed_reply_is_retried(server):
    server.malformed("html").reply("70")
    [got] = scorer(server).score_detailed(items("albatross"))
    assert got.value == pytest.approx(0.7) and got.detail["attempts"] == 2
    assert "HTML page" in got.detail["earlier"][0]["error"]


def test_malformed_after_the_retries_names_the_item(server):
    server.reply("80")
    for _ in range(3):
        server.malformed("wrong_shape")
    s = scorer(server, retries=2)
    with pytest.raises(MalformedReplyError, match=r"malformed reply from openai: no usable score in 3 "
                                                  r"answer\(s\) for item 2 of 2 \(concept 'ramen'\)"):
        s.score(items("albatross", "ramen"))
    assert server.request_count == 4


def test_a_refused_request_names_the_item(server):
    server.error(400, "Invalid image data")
    with pytest.raises(ProviderError, match=r"^openai: scoring item 1 of 1 \(concept 'albatross'\) failed: "
                                            r".*Invalid image data"):
        scorer(server).score(items("albatross"))


def test_the_api_critic_is_asked_concurrently(server):
    server.set_default("50")
    s = scorer(server, concurrency=4)
    assert s.concurrent, "the openai critic has an async path: images are asked at once"
    assert s.score(items("a", "b", "c", "d", "e")) == [pytest.approx(0.5)] * 5
    assert server.request_count == 5
