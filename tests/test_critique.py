"""The chain-of-thought critic protocol, driven through a scripted model."""

import asyncio
import json

from PIL import Image

from imagerag_sdk.errors import MalformedReplyError
from imagerag_sdk.testing import ScriptedCritic

PROMPT = "an oil painting of a sheep and a car"
IMAGE = Image.new("RGB", (2000, 1000), (10, 20, 30))


def critic(answers, **options):
    return ScriptedCritic(answers=answers, **options)


def test_three_step_match_stops_after_one_question():
    c = critic(["Yes, it matches."], protocol="three_step")
    result = c.critique(PROMPT, IMAGE)
    assert result.matches and not result.missing and len(c.requests) == 1
    assert len(c.requests[0].images) == 1
    assert max(c.requests[0].images[0].size) == 768  # downscaled before upload


def test_three_step_concepts_and_captions():
    c = critic(["No.", "- oil painting style\n- a sheep",
                "oil painting style: a landscape painted in thick oil strokes\na sheep: a white sheep in a meadow"],
               protocol="three_step")
    result = c.critique(PROMPT, IMAGE)
    assert not result.matches and not result.gave_up
    assert [(m.concept, m.caption) for m in result.missing] == [
        ("oil painting style", "a landscape painted in thick oil strokes"),
        ("a sheep", "a white sheep in a meadow")]
    stages = [x.stage for x in result.exchanges]
    assert stages == ["decide", "concepts", "captions"]
    assert len(c.requests[2].images) == 0  # captions are written without the image
    assert "a sheep" in c.requests[2].text


def test_no_concepts_retries_with_rising_temperature_then_gives_up():
    c = critic(["No", "I am unable to respond.", "", "none", "Sorry, I cannot help."], protocol="three_step")
    result = c.critique(PROMPT, IMAGE)
    assert result.gave_up and not result.matches and not result.missing
    concept_temps = [r.temperature for r in c.requests[1:]]
    assert len(concept_temps) == 4  # the first ask and 3 retries
    assert concept_temps == sorted(concept_temps) and len(set(concept_temps)) == 4
    assert result.attempts == 4


def test_model_without_temperature_records_the_alternative():
    c = critic(["No", "", "", "- a sheep", "a sheep: a white sheep"], protocol="three_step",
               temperature_supported=False)
    result = c.critique(PROMPT, IMAGE)
    assert [m.concept for m in result.missing] == ["a sheep"]
    assert all(r.temperature is None for r in c.requests)
    retried = [x for x in result.exchanges if x.stage == "concepts"]
    assert retried[0].alternative is None
    assert all("prompt variant" in x.alternative for x in retried[1:])
    assert [r.seed for r in c.requests[1:4]] == [None, 1, 2]
    assert c.requests[2].text != c.requests[1].text  # the variant really changed the request


def test_unparseable_verdict_is_treated_as_mismatch():
    c = critic(["hmm", "perhaps", "?", "...", "- a car", "a car: a red car"], protocol="three_step", retries=3)
    result = c.critique(PROMPT, IMAGE)
    assert not result.matches and [m.concept for m in result.missing] == ["a car"]
    assert any("treated as not matching" in n for n in result.notes)


def test_missing_caption_falls_back_to_concept():
    c = critic(["No", "- a sheep\n- a car", "a sheep: a white sheep"], protocol="three_step", retries=1)
    result = c.critique(PROMPT, IMAGE)
    assert dict((m.concept, m.caption) for m in result.missing) == {"a sheep": "a white sheep", "a car": "a car"}
    assert any("a car" in n for n in result.notes)


def test_fused_structured_answer():
    answer = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a white sheep in a field"}]}
    c = critic([answer], structured=True)
    result = c.critique(PROMPT, IMAGE)
    assert c.requests[0].json_schema is not None and len(c.requests) == 1
    assert [(m.concept, m.caption) for m in result.missing] == [("a sheep", "a white sheep in a field")]


def test_fused_fenced_text_and_invalid_then_fallback():
    fenced = "```json\n" + json.dumps({"matches": True, "missing": []}) + "\n```"
    assert critic([fenced], protocol="fused").critique(PROMPT, IMAGE).matches
    c = critic(["{bad json", '{"matches": false, "missing": []}', "nope", "???"], protocol="fused")
    result = c.critique(PROMPT, IMAGE)
    assert result.gave_up and not result.matches
    temps = c.temperatures
    assert len(temps) == 4 and temps == sorted(temps) and temps[0] == 0.0


def test_max_concepts_is_respected():
    answer = {"matches": False, "missing": [{"concept": f"c{i}", "caption": f"cap {i}"} for i in range(5)]}
    result = critic([answer], structured=True).critique(PROMPT, IMAGE, max_concepts=2)
    assert [m.concept for m in result.missing] == ["c0", "c1"]


def test_async_critique():
    result = asyncio.run(critic(["Yes"], protocol="three_step").acritique(PROMPT, IMAGE))
    assert result.matches


def test_rephrase():
    c = critic(['"a thick oil painting of a white sheep next to a red car"'])
    prompt, exchanges = c.rephrase(PROMPT)
    assert prompt == "a thick oil painting of a white sheep next to a red car"
    assert exchanges[0].stage == "rephrase"


class MalformedFirst(ScriptedCritic):
    """Its provider answers ``bad`` malformed replies (an HTML page) before the script."""

    name = "malformed-first"

    def __init__(self, *args, bad=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad = bad

    def ask(self, request):
        if self.bad:
            self.bad -= 1
            self.requests.append(request)
            raise MalformedReplyError("an HTML page (text/html), not a JSON completion", provider="fakeprov",
                                      raw="<html>a sheep: a login page</html>" + "x" * 5000)
        return super().ask(request)


def test_malformed_reply_is_recorded_and_retried():
    c = MalformedFirst(answers=["Yes"], protocol="three_step", bad=2)
    result = c.critique(PROMPT, IMAGE)
    assert result.matches and not result.gave_up and result.attempts == 3
    first, second, third = result.exchanges
    assert first.error == "malformed reply from fakeprov: an HTML page (text/html), not a JSON completion"
    assert first.answer.startswith("<html>") and len(first.answer) < 2100, "raw reply kept, capped"
    assert first.parsed is None and second.error == first.error and third.error is None
    assert [r.temperature for r in c.requests] == sorted(r.temperature for r in c.requests)


def test_malformed_replies_to_the_end_give_up():
    c = MalformedFirst(answers=["Yes"], protocol="fused", retries=2, bad=10)
    result = c.critique(PROMPT, IMAGE)
    assert result.gave_up and not result.matches and len(result.exchanges) == 3
    assert all(e.error.startswith("malformed reply from fakeprov") for e in result.exchanges)


class MalformedCaptions(ScriptedCritic):
    name = "malformed-captions"

    def ask(self, request):
        if request.text.startswith("For each concept below"):
            self.requests.append(request)
            raise MalformedReplyError("JSON of another shape", provider="fakeprov",
                                      raw='{"error": "a sheep: a login page"}')
        return super().ask(request)


def test_malformed_caption_reply_is_not_read_for_captions():
    result = MalformedCaptions(answers=["No", "- a sheep"], protocol="three_step", retries=1).critique(PROMPT, IMAGE)
    assert [(m.concept, m.caption) for m in result.missing] == [("a sheep", "a sheep")], \
        "the raw reply must not be read as a caption"
    assert [e.stage for e in result.exchanges][-2:] == ["captions", "captions"]
