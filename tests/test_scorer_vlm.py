"""The ``vlm`` scorer over a scripted VLM critic: the question, the reading of answers, retries
through the critic's ladder, the error naming the item, concurrency, registration."""

from __future__ import annotations

import json
import threading

import pytest
from PIL import Image
from pydantic import ValidationError

from imagerag_sdk.critique import VLMAnswer, VLMRequest
from imagerag_sdk.errors import ConfigError, MalformedReplyError, ProviderError
from imagerag_sdk.hookspecs import hookimpl
from imagerag_sdk.roles import Critic, Scorer
from imagerag_sdk.scorer_vlm import QUESTION, VLMScorer, parse_score
from imagerag_sdk.testing import ScriptedCritic
from imagerag_sdk.testing.contracts import ScorerContract
from imagerag_sdk.types import Critique, Score, ScoreItem

CONCEPT = "Black footed Albatross"


def item(concept=CONCEPT, colour=(90, 120, 200)):
    return ScoreItem(prompt=f"A photo of a {concept}" if concept else "a blue square",
                     image=Image.new("RGB", (48, 32), colour), concept=concept)


def scorer(answers, **options):
    critic = {"use": "scripted", "answers": answers}
    critic.update(options.pop("critic", {}))
    return VLMScorer(critic=critic, **options)


@pytest.mark.parametrize("text, value, how", [
    ("87", 0.87, "number"),
    ("Score: 0.9", 0.9, "number"),
    ("Rating: **92**", 0.92, "number"),
    ("87/100", 0.87, "number"),
    ("8/10", 0.8, "number"),
    ("4 out of 5", 0.8, "number"),
    ("87%", 0.87, "number"),
    ("1.0", 1.0, "number"),
    ("100", 1.0, "number"),
    ("0", 0.0, "number"),
    ("On a scale from 0 to 100, I would say 75.", 0.75, "number"),
    ('{"score": 87}', 0.87, "number"),
    ('```json\n{"rating": 0.7}\n```', 0.7, "number"),
    ("Yes", 1.0, "yes/no"),
    ("yes, it shows the bird.", 1.0, "yes/no"),
    ("**No.** It shows a gull.", 0.0, "yes/no"),
    ('{"answer": "yes"}', 1.0, "yes/no"),
])
def test_parse_score(text, value, how):
    got = parse_score(VLMAnswer(text=text))
    assert got is not None and got[0] == pytest.approx(value) and got[1] == how


@pytest.mark.parametrize("text", ["", "I cannot see the image.", "No image was provided.", "120", "-5",
                                  "true", "The image shows a bird.", '{"verdict": "good"}'])
def test_unusable_answers(text):
    assert parse_score(VLMAnswer(text=text)) is None


def test_numbers_of_the_subject_are_not_read():
    answer = VLMAnswer(text="The Boeing 737-200 is clearly shown: 90")
    assert parse_score(answer, "Boeing 737-200") == (pytest.approx(0.9), "number")
    assert parse_score(answer) is None, "without the subject its 737 is read first, and is no score"


def test_structured_answer_data():
    assert parse_score(VLMAnswer(text="", data={"score": 64})) == (pytest.approx(0.64), "number")


def test_scores_and_details_one_request_per_image():
    s = scorer(["87", "Score: 0.9", "yes"])
    batch = [item(), item("Boeing 737-200"), item("Ramen")]
    got = s.score_detailed(batch)
    assert [g.value for g in got] == [pytest.approx(0.87), pytest.approx(0.9), 1.0]
    assert all(isinstance(g, Score) for g in got)
    assert [g.detail["answer"] for g in got] == ["87", "Score: 0.9", "yes"]
    assert [g.detail["parsed_as"] for g in got] == ["number", "number", "yes/no"]
    assert [g.detail["attempts"] for g in got] == [1, 1, 1]
    json.dumps([dict(g.detail) for g in got])
    requests = s.critic.requests
    assert len(requests) == 3 and all(len(r.images) == 1 for r in requests)
    assert requests[0].text == QUESTION.format(subject=CONCEPT)
    assert got[0].detail["question"] == requests[0].text and got[0].detail["subject"] == CONCEPT
    assert requests[0].temperature == 0.0 and requests[0].json_schema is None
    assert requests[1].images[0].size == (48, 32)


def test_score_returns_the_detailed_values():
    assert scorer(["40"]).score([item(), item()]) == [pytest.approx(0.4), pytest.approx(0.4)]
    assert scorer(["40"]).score([]) == []


def test_the_question_text_is_the_documented_one():
    assert QUESTION.format(subject=CONCEPT) == (
        'How well does this image show "Black footed Albatross"?\n'
        "Rate it with one whole number from 0 to 100: 0 means it does not show it at all, "
        "100 means it shows it clearly and correctly. Answer with the number only.")


def test_subject_prompt_or_fallback_to_the_prompt():
    s = scorer(["50"], subject="prompt")
    s.score([item()])
    assert '"A photo of a Black footed Albatross"' in s.critic.requests[0].text
    s = scorer(["50"])
    s.score([item(concept="")])
    assert '"a blue square"' in s.critic.requests[-1].text, "no concept: the prompt is asked about"


def test_own_question():
    s = scorer(["3"], question="Rate {subject} from 0 to 100. {{number only}}")
    s.score([item()])
    assert s.critic.requests[0].text == f"Rate {CONCEPT} from 0 to 100. {{number only}}"
    with pytest.raises(ValidationError, match="must contain {subject}"):
        VLMScorer(critic={"use": "scripted"}, question="Rate this image")
    with pytest.raises(ValidationError, match="not a valid template"):
        VLMScorer(critic={"use": "scripted"}, question="Rate {subject} {oops}")


def test_unusable_answer_is_asked_again_through_the_critics_ladder():
    s = scorer(["I am not sure what to say.", "Score: 0.9"])
    [got] = s.score_detailed([item()])
    assert got.value == pytest.approx(0.9)
    assert s.critic.temperatures == [0.0, pytest.approx(0.3)], "the critic's rising temperature"
    assert got.detail["attempts"] == 2 and got.detail["temperature"] == pytest.approx(0.3)
    assert got.detail["earlier"] == [{"answer": "I am not sure what to say.", "error": "unusable answer",
                                      "temperature": 0.0, "alternative": None}]


def test_models_without_temperature_get_the_ladders_variants():
    s = scorer(["hmm", "70"], critic={"temperature_supported": False})
    [got] = s.score_detailed([item()])
    assert got.value == pytest.approx(0.7) and s.critic.temperatures == [None, None]
    assert s.critic.requests[1].seed == 1 and "prompt variant 1" in got.detail["alternative"]
    assert got.detail["earlier"][0]["alternative"] is None and got.detail["temperature"] is None


def test_unusable_after_the_retries_is_an_error_naming_the_item():
    s = scorer(["12", "The image shows a bird."], critic={"retries": 2})
    with pytest.raises(MalformedReplyError) as err:
        s.score_detailed([item("Ramen"), item()])
    message = str(err.value)
    assert "item 2 of 2 (concept 'Black footed Albatross')" in message
    assert "no usable score in 3 answer(s)" in message and "The image shows a bird." in message
    assert "'retries' option" in message
    assert err.value.raw == "The image shows a bird."
    assert len(s.critic.requests) == 4, "one for item 1, then 1 + 2 retries for item 2"


def test_a_provider_failure_names_the_item():
    s = scorer([], critic={"fail_with": "HTTP 503 after 3 requests", "fail_as": "timeout"})
    with pytest.raises(ProviderError, match=r"^scripted: scoring item 1 of 1 \(concept 'Black footed "
                                            r"Albatross'\) failed: HTTP 503 after 3 requests$"):
        s.score([item()])


class MalformedThenGood(ScriptedCritic):
    name = "malformed-then-good"

    def ask(self, request: VLMRequest) -> VLMAnswer:
        if not self.requests:
            self.requests.append(request)
            raise MalformedReplyError("'choices' is not a list", provider="fakeprov", raw='{"choices": "no"}')
        return super().ask(request)


class AsyncCritic(ScriptedCritic):
    """A critic with an async path of its own, whose sync ask waits until two asks are in flight."""

    name = "async-scripted"
    barrier = threading.Barrier(2, timeout=30)

    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.barrier.wait()
        return super().ask(request)

    async def aask(self, request: VLMRequest) -> VLMAnswer:  # pragma: no cover - its presence counts
        return self.ask(request)


class PlainCritic(Critic):
    name = "plain-scorer-critic"

    def critique(self, prompt, image, *, max_concepts=3):
        return Critique(matches=True)


class BrightnessCritic(ScriptedCritic):
    """Rates an image by its brightness (0 black … 100 white): answers that depend on the image."""

    name = "brightness-scorer-critic"

    def ask(self, request: VLMRequest) -> VLMAnswer:
        grey = request.images[-1].convert("L").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        return VLMAnswer(text=str(round(float(grey) / 255 * 100)))


class _Plugin:
    @staticmethod
    @hookimpl
    def register_critics(register):
        register(BrightnessCritic)
        register(MalformedThenGood)
        register(AsyncCritic)
        register(PlainCritic)


@pytest.fixture
def critics(register_plugin):
    register_plugin(_Plugin(), name="vlm-scorer-test-critics")


def test_a_malformed_reply_is_an_unusable_answer_and_retried(critics):
    s = VLMScorer(critic={"use": "malformed-then-good", "answers": ["80"]})
    [got] = s.score_detailed([item()])
    assert got.value == pytest.approx(0.8) and got.detail["attempts"] == 2
    assert got.detail["earlier"][0]["answer"] == '{"choices": "no"}'
    assert "malformed reply from fakeprov" in got.detail["earlier"][0]["error"]


def test_critics_with_an_async_path_are_asked_concurrently(critics):
    s = VLMScorer(critic={"use": "async-scripted", "answers": ["60"]}, concurrency=2)
    assert s.concurrent
    assert s.score([item(), item(), item(), item()]) == [pytest.approx(0.6)] * 4
    assert len(s.critic.requests) == 4


def test_other_critics_are_asked_one_image_at_a_time():
    s = scorer(["60"])
    assert not s.concurrent
    assert not VLMScorer(critic={"use": "scripted"}, concurrency=1).concurrent
    threads = []

    class Spy(ScriptedCritic):
        def ask(self, request):
            threads.append(threading.current_thread())
            return super().ask(request)

    s.critic.__class__ = Spy
    s.score([item(), item(), item()])
    assert threads == [threading.current_thread()] * 3


def test_the_critic_must_be_a_vlm(critics):
    with pytest.raises(ConfigError, match="cannot score images: it is not a vision-language critic"):
        VLMScorer(critic={"use": "plain-scorer-critic"}).load()


def test_structured_critics_get_a_schema():
    s = scorer([{"score": 55}], critic={"structured": True})
    [got] = s.score_detailed([item()])
    assert got.value == pytest.approx(0.55)
    assert s.critic.requests[0].json_schema["required"] == ["score"]


def test_describe_masks_critic_secrets():
    s = VLMScorer(critic={"use": "scripted", "api_key": "sk-123", "model": "m"})
    text = json.dumps(s.describe())
    assert "sk-123" not in text and '"model": "m"' in text


def test_registered_as_the_vlm_scorer(imagerag_registry):
    s = imagerag_registry.build("scorer", "vlm", {"critic": {"use": "scripted", "answers": ["33"]}})
    assert isinstance(s, VLMScorer) and isinstance(s, Scorer) and not s.needs_real_images
    assert s.score([item()]) == [pytest.approx(0.33)]
    assert s.load_count == 1 and s.critic is imagerag_registry.build("critic", "scripted", {"answers": ["33"]})


class TestVLMScorerContract(ScorerContract):
    @pytest.fixture
    def component(self, critics):
        return VLMScorer(critic={"use": "brightness-scorer-critic"})
