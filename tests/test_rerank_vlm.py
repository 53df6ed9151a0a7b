"""The ``vlm`` reranker with a scripted critic: choices, tolerant parsing, what is sent, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagerag_sdk.critique import VLMAnswer, VLMRequest
from imagerag_sdk.errors import ConfigError, MalformedReplyError, ProviderError
from imagerag_sdk.hookspecs import hookimpl
from imagerag_sdk.images import fit_within, load_rgb
from imagerag_sdk.rerank_vlm import VLMReranker, parse_choice
from imagerag_sdk.roles import Critic
from imagerag_sdk.testing import FakeRetriever, ScriptedCritic
from imagerag_sdk.testing.contracts import RerankerContract
from imagerag_sdk.types import Critique, Hit

QUERY = "a golden retriever dog playing with a ball"


@pytest.fixture
def vlm_hits(tmp_path):
    return FakeRetriever(corpus_dir=str(tmp_path / "corpus")).search(["a red car on a street"], k=5)[0]


def reranker(answers, **options):
    return VLMReranker(critic={"use": "scripted", "answers": answers}, **options)


def paths(hits):
    return [h.path for h in hits]


@pytest.mark.parametrize("answer, first", [
    ("2", 2),
    ("The best is image 3", 3),
    ('{"best": 1}', 1),
    ({"best": 4}, 4),
    ("```json\n{\"choice\": 5}\n```", 5),
    ("**Image #2** matches best: it shows a dog.", 2),
    ("3.", 3),
])
def test_chosen_hit_goes_first(vlm_hits, answer, first):
    r = reranker([answer], top_n=5)
    out = r.rerank(QUERY, vlm_hits)
    expected = [vlm_hits[first - 1]] + [h for i, h in enumerate(vlm_hits) if i != first - 1]
    assert paths(out) == paths(expected)
    assert [h.rank for h in out] == list(range(len(out)))
    assert [h.score for h in out] == [h.score for h in expected], "scores stay the visual ones"
    record = out[0].metadata["vlm_rerank"]
    assert record["best"] == first and record["kept_visual_order"] is False
    assert record["exchange"]["stage"] == "rerank" and record["exchange"]["images"] == 5
    assert out[0].metadata["visual_rank"] == first
    assert r.exchanges[-1].parsed == [first]


@pytest.mark.parametrize("answer", ["I like turtles", "", "9", "0", "None of these images match.",
                                    '{"best": 17}', "I am unable to compare images."])
def test_unusable_answer_keeps_visual_order(vlm_hits, answer):
    r = reranker([answer], top_n=5)
    out = r.rerank(QUERY, vlm_hits)
    assert paths(out) == paths(vlm_hits)
    record = out[0].metadata["vlm_rerank"]
    assert record["kept_visual_order"] is True and "unusable answer" in record["reason"]
    assert r.exchanges[-1].error and r.exchanges[-1].answer == answer


def test_images_sent_numbered_and_downscaled(vlm_hits):
    r = reranker(["1"], top_n=3, max_image_side=32, label_images=False)
    r.rerank(QUERY, vlm_hits)
    critic = r.critic
    assert isinstance(critic, ScriptedCritic) and len(critic.requests) == 1
    req = critic.requests[0]
    assert len(req.images) == 3, "one request with the top 3 candidates"
    for img, hit in zip(req.images, vlm_hits[:3], strict=True):  # the top 3
        assert max(img.size) <= 32
        want = np.asarray(fit_within(load_rgb(hit.path), 32), dtype=np.int16)
        assert np.array_equal(np.asarray(img, dtype=np.int16), want), "images in visual order"
    assert req.temperature == 0.0
    assert QUERY in req.text and "1 to 3" in req.text and req.json_schema is None


def test_labels_drawn_on_images(vlm_hits):
    r = reranker(["1"], top_n=2)
    r.rerank(QUERY, vlm_hits)
    req = r.critic.requests[0]
    original = np.asarray(fit_within(load_rgb(vlm_hits[0].path), 384))
    sent = np.asarray(req.images[0])
    assert sent.shape == original.shape and not np.array_equal(sent, original)
    assert "top-left corner" in req.text


def test_only_top_n_are_shown_rest_keep_order(vlm_hits):
    r = reranker(["2"], top_n=2)
    out = r.rerank(QUERY, vlm_hits)
    assert len(r.critic.requests[0].images) == 2
    assert paths(out) == paths([vlm_hits[1], vlm_hits[0], *vlm_hits[2:]])


def test_ranking_mode(vlm_hits):
    r = reranker(["3, 1, 2"], top_n=4, mode="ranking")
    out = r.rerank(QUERY, vlm_hits)
    # shown 1-4: the ranking 3, 1, 2, then the unranked shown one (4), then the rest (5)
    assert paths(out) == paths([vlm_hits[i] for i in (2, 0, 1, 3, 4)])
    assert "best first" in r.critic.requests[0].text
    assert out[0].metadata["vlm_rerank"]["ranking"] == [3, 1, 2]


def test_structured_critic_gets_schema(vlm_hits):
    r = VLMReranker(critic={"use": "scripted", "answers": [{"best": 2}], "structured": True}, top_n=3)
    out = r.rerank(QUERY, vlm_hits)
    assert r.critic.requests[0].json_schema["required"] == ["best"]
    assert out[0].path == vlm_hits[1].path


def test_no_temperature_for_models_without_one(vlm_hits):
    r = VLMReranker(critic={"use": "scripted", "answers": ["1"], "temperature_supported": False})
    r.rerank(QUERY, vlm_hits)
    assert r.critic.requests[0].temperature is None


def test_single_candidate_needs_no_request(vlm_hits):
    r = reranker(["2"])
    out = r.rerank(QUERY, vlm_hits[:1])
    assert paths(out) == paths(vlm_hits[:1]) and r.critic.requests == []
    assert out[0].metadata["vlm_rerank"]["kept_visual_order"] is True
    assert r.rerank(QUERY, []) == []


def test_unreadable_candidate_is_skipped_and_noted(vlm_hits, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    hits = [vlm_hits[0], Hit(path=str(broken), score=0.2, metadata={}), vlm_hits[1]]
    r = reranker(["2"], top_n=3)
    out = r.rerank(QUERY, hits)
    assert len(r.critic.requests[0].images) == 2
    # shown: hits 0 and 2 as images 1 and 2; "2" picks hits[2]; the unreadable one goes last
    assert paths(out) == paths([hits[2], hits[0], hits[1]])
    assert "candidate 2 not shown" in out[0].metadata["vlm_rerank"]["notes"][0]


class FailingCritic(ScriptedCritic):
    name = "failing-vlm"

    def ask(self, request: VLMRequest) -> VLMAnswer:
        raise ProviderError("HTTP 503 after retries", provider="failing")


class PlainCritic(Critic):
    name = "plain"

    def critique(self, prompt, image, *, max_concepts=3, user_images=()):
        return Critique(matches=True)


class _Plugin:
    @staticmethod
    @hookimpl
    def register_critics(register):
        register(FailingCritic)
        register(PlainCritic)


def test_provider_error_raises_or_keeps_order(vlm_hits, register_plugin):
    register_plugin(_Plugin(), name="vlm-test-critics")
    with pytest.raises(ProviderError, match="503"):
        VLMReranker(critic={"use": "failing-vlm"}).rerank(QUERY, vlm_hits)
    out = VLMReranker(critic={"use": "failing-vlm"}, on_provider_error="keep_order").rerank(QUERY, vlm_hits)
    assert paths(out) == paths(vlm_hits)
    assert "503" in out[0].metadata["vlm_rerank"]["reason"]


def test_critic_must_be_a_vlm(vlm_hits, register_plugin):
    register_plugin(_Plugin(), name="vlm-test-critics")
    with pytest.raises(ConfigError, match="not a vision-language critic"):
        VLMReranker(critic={"use": "plain"}).load()


def test_describe_masks_critic_secrets():
    r = VLMReranker(critic={"use": "scripted", "api_key": "sk-123", "model": "m"})
    described = json.dumps(r.describe())
    assert "sk-123" not in described and '"model": "m"' in described


def test_built_by_name_from_registry(imagerag_registry, vlm_hits):
    r = imagerag_registry.build("reranker", "vlm", {"critic": {"use": "scripted", "answers": ["2"]}})
    assert isinstance(r, VLMReranker)
    assert r.rerank(QUERY, vlm_hits)[0].path == vlm_hits[1].path


@pytest.mark.parametrize("text, n, ranking, expected", [
    ("1", 3, False, [1]),
    ("Image 2 is better than image 1", 3, False, [2]),
    ("Ranking: 3 > 1 > 2", 3, True, [3, 1, 2]),
    ('{"ranking": [2, 2, 3]}', 3, True, [2, 3]),
    ('[3, 1]', 3, True, [3, 1]),
    ("similarity 0.85 for image 2", 3, False, [2]),
    ("4", 3, False, None),
    ('{"verdict": "good"}', 3, False, None),
    ("true", 3, False, None),
])
def test_parse_choice(text, n, ranking, expected):
    assert parse_choice(VLMAnswer(text=text), n, ranking=ranking) == expected


class TestVLMRerankerContract(RerankerContract):
    @pytest.fixture
    def component(self):
        return VLMReranker(critic={"use": "scripted", "answers": ["The best is image 2"]})


def test_in_a_profile_the_choice_reaches_the_references(tmp_path):
    from imagerag_sdk.profiles import build_pipeline, check, parse_profile

    data = {"name": "vlm-rerank", "generator": {"use": "fake"}, "critic": {"use": "fake"},
            "retriever": {"use": "fake", "corpus_dir": str(tmp_path / "corpus")},
            "reranker": {"use": "vlm", "top_n": 3, "critic": {"use": "scripted", "answers": ["2"]}},
            "loop": {"candidates": 3, "max_concepts": 1}}
    profile = parse_profile(data)
    assert check(profile) == []
    bad = parse_profile({**data, "reranker": {"use": "vlm", "critic": {"use": "scripted", "bogus": 1}}})
    assert any("reranker.critic.bogus" in p for p in check(bad))
    result = build_pipeline(profile).run("a sheep in a field", out=None)
    rnd = result.trace.to_dict()["rounds"][0]
    (query, hits), = rnd["hits"].items()
    reranked = rnd["reranked"][query]
    assert reranked[0]["path"] == hits[1]["path"], "the critic's choice (image 2) comes first"
    assert reranked[0]["metadata"]["vlm_rerank"]["exchange"]["answer"] == "2"
    assert result.references[0].path == hits[1]["path"]


class MalformedCritic(ScriptedCritic):
    name = "malformed-vlm"

    def ask(self, request: VLMRequest) -> VLMAnswer:
        raise MalformedReplyError("'choices' is not a list", provider="fakeprov", raw='{"choices": "nope"}')


class _MalformedPlugin:
    @staticmethod
    @hookimpl
    def register_critics(register):
        register(MalformedCritic)


@pytest.mark.parametrize("on_provider_error", ["raise", "keep_order"])
def test_malformed_reply_is_an_unusable_answer(vlm_hits, register_plugin, on_provider_error):
    register_plugin(_MalformedPlugin(), name="vlm-malformed-critic")
    r = VLMReranker(critic={"use": "malformed-vlm"}, on_provider_error=on_provider_error)
    out = r.rerank(QUERY, vlm_hits)
    assert paths(out) == paths(vlm_hits)
    record = out[0].metadata["vlm_rerank"]
    assert record["kept_visual_order"] is True
    assert record["reason"] == "unusable answer: malformed reply from fakeprov: 'choices' is not a list"
    assert r.exchanges[-1].answer == '{"choices": "nope"}'
