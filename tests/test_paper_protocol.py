"""``protocol: paper``: the appendix C prompts word for word, asked as one conversation; the
generation mode (``decision: skip``); the personalization decision; the pipeline's user images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.roles import Critic, Options
from imagerag_sdk.testing import FakeCritic, FakeGenerator, FakeRetriever, ScriptedCritic
from imagerag_sdk.types import Critique

APPENDIX_C = Path(__file__).parent / "data" / "paper-appendix-c.md"
PROMPT = "an oil painting of a sheep and a car"
IMAGE = Image.new("RGB", (1000, 800), (10, 20, 30))
USER = Image.new("RGB", (300, 300), (200, 30, 30))
CONCEPTS = "oil painting style\na sheep"
CAPTIONS = "a landscape painted in thick oil strokes\na white sheep in a meadow"


def appendix_c() -> dict[str, str]:
    """The quoted prompts of the fixture by their label, typographic quotes made plain: each
    paragraph is ``Label: ‘text’`` (the rephrase quote has no closing mark in the paper)."""
    out = {}
    for para in APPENDIX_C.read_text(encoding="utf-8").split("\n\n"):
        label, sep, body = para.strip().partition(": \u2018")
        if not sep:
            continue
        body = body.removesuffix("\u2019")
        out[label] = body.replace("\u201c", '"').replace("\u201d", '"')
    return out


def quoted(label: str, prompt: str = PROMPT) -> str:
    return appendix_c()[label].replace("{prompt}", prompt)


DECISION_LABEL = "Decision"
CONCEPTS_LABEL = "Missing Concepts Identification"
CAPTIONS_LABEL = "Caption Generation"
REPHRASE_LABEL = "Rephrase request prompt: prompt used for the rephrasing ablation experiment"


def paper_critic(answers, **options) -> ScriptedCritic:
    return ScriptedCritic(answers=answers, protocol="paper", **options)


def test_questions_are_sent_word_for_word():
    prompts = appendix_c()  # the fixture parses into the paper's four prompts
    assert set(prompts) == {DECISION_LABEL, CONCEPTS_LABEL, CAPTIONS_LABEL, REPHRASE_LABEL}
    assert all("\u201c" not in p and "\u2018" not in p for p in prompts.values())
    c = paper_critic(["No", CONCEPTS, CAPTIONS])
    result = c.critique(PROMPT, IMAGE)
    assert [r.text for r in c.requests] == [quoted(DECISION_LABEL), quoted(CONCEPTS_LABEL),
                                            quoted(CAPTIONS_LABEL)]
    assert [x.prompt for x in result.exchanges] == [r.text for r in c.requests]
    assert [(m.concept, m.caption) for m in result.missing] == [
        ("oil painting style", "a landscape painted in thick oil strokes"),
        ("a sheep", "a white sheep in a meadow")]


def test_one_conversation_keeps_the_image_and_the_answers():
    from imagerag_sdk.critique import Turn

    c = paper_critic(["No.", CONCEPTS, CAPTIONS])
    c.critique(PROMPT, IMAGE)
    decide, concepts, captions = c.requests
    assert decide.history == () and len(decide.images) == 1
    assert max(decide.images[0].size) == 768  # downscaled once, as every request sends it
    first = Turn(quoted(DECISION_LABEL), decide.images, "No.")
    assert concepts.history == (first,) and concepts.images == ()
    assert captions.history == (first, Turn(quoted(CONCEPTS_LABEL), (), CONCEPTS))
    assert [role for role, _, _ in captions.messages()] == ["user", "assistant"] * 2 + ["user"]


def test_a_match_ends_the_conversation():
    c = paper_critic(["Yes"])
    result = c.critique(PROMPT, IMAGE)
    assert result.matches and len(c.requests) == 1


def test_retry_ladder_runs_per_turn_and_keeps_only_the_used_answer():
    c = paper_critic(["No", "I am unable to respond.", "Sorry, I can't.", CONCEPTS, CAPTIONS])
    result = c.critique(PROMPT, IMAGE)
    assert [m.concept for m in result.missing] == ["oil painting style", "a sheep"]
    concept_requests = c.requests[1:4]
    assert all(len(r.history) == 1 for r in concept_requests)  # a retry does not follow the refusal
    temps = [r.temperature for r in concept_requests]
    assert temps == sorted(temps) and len(set(temps)) == 3
    captions = c.requests[4]
    assert captions.temperature == 0.0  # a new question starts the ladder again
    assert captions.history[1].answer == CONCEPTS
    assert [x.attempt for x in result.exchanges if x.stage == "concepts"] == [1, 2, 3]


def test_no_concepts_gives_up_and_the_pipeline_retrieves_by_the_prompt():
    c = paper_critic(["No", "I am unable to respond."], retries=1)
    result = c.critique(PROMPT, IMAGE)
    assert result.gave_up and not result.matches and not result.missing
    run = ImageRAG(FakeGenerator(), paper_critic(["No", "I am unable to respond."], retries=1),
                   FakeRetriever()).run(PROMPT, out=None)
    assert run.trace.rounds[0].fallback is True
    assert [q.query for q in run.trace.rounds[0].queries] == [PROMPT]


def test_unreadable_decision_goes_on_as_no():
    c = paper_critic(["maybe?", "hmm", CONCEPTS, CAPTIONS], retries=1)
    result = c.critique(PROMPT, IMAGE)
    assert not result.matches and len(result.missing) == 2
    assert c.requests[2].history[0].answer == "hmm"  # the last answer the model really gave
    assert any("treated as not matching" in n for n in result.notes)


def test_model_without_temperature_keeps_the_variant_it_answered():
    c = paper_critic(["", "No", CONCEPTS, CAPTIONS], temperature_supported=False)
    c.critique(PROMPT, IMAGE)
    assert c.requests[1].text != quoted(DECISION_LABEL)  # the retry varied the wording
    assert c.requests[2].history[0].text == c.requests[1].text


def test_captions_cover_every_suggested_concept_then_the_budget_cuts():
    c = paper_critic(["No", "oil painting style\na sheep\na red car", "c1\nc2\nc3"])
    result = c.critique(PROMPT, IMAGE, max_concepts=2)
    assert [(m.concept, m.caption) for m in result.missing] == [("oil painting style", "c1"),
                                                                ("a sheep", "c2")]
    assert any("kept the first 2" in n for n in result.notes)


def test_rephrase_is_asked_after_the_decision_with_the_image():
    crit = paper_critic(["No"], retries=0).critique(PROMPT, IMAGE)
    c2 = paper_critic(['"a thick oil painting of a white sheep next to a car"'])
    new, exchanges = c2.rephrase(PROMPT, image=IMAGE, critique=crit)
    assert new == "a thick oil painting of a white sheep next to a car"
    [req] = c2.requests
    assert req.text == quoted(REPHRASE_LABEL) and req.images == ()
    [turn] = req.history
    assert turn.text == quoted(DECISION_LABEL) and turn.answer == "No" and len(turn.images) == 1
    assert exchanges[0].stage == "rephrase" and exchanges[0].images == 1


def test_pipeline_rephrase_mode_sends_the_paper_rephrase_in_context():
    critic = paper_critic(["No", CONCEPTS, CAPTIONS, "a white sheep and a car in thick oil paint"])
    run = ImageRAG(FakeGenerator(), critic, loop={"mode": "rephrase"}).run(PROMPT, out=None)
    assert run.trace.rounds[0].rephrase.prompt == "a white sheep and a car in thick oil paint"
    rephrase = critic.requests[-1]
    assert rephrase.text == quoted(REPHRASE_LABEL)
    assert rephrase.history[0].text == quoted(DECISION_LABEL) and len(rephrase.history[0].images) == 1


def test_generation_mode_skips_the_decision():
    c = paper_critic(["a sheep\noil painting style", "a white sheep\nthick oil strokes"],
                     decision="skip")
    result = c.critique(PROMPT, IMAGE, user_images=[USER])
    assert not result.matches and [x.stage for x in result.exchanges] == ["concepts", "captions"]
    first = c.requests[0]
    assert "Does this image match" not in first.text and f'"{PROMPT}"' in first.text
    assert first.text.startswith("Which visual concepts")
    assert [im.getpixel((0, 0)) for im in first.images] == [(200, 30, 30)]  # the user's, not the generated
    assert c.requests[1].text == quoted(CAPTIONS_LABEL) and c.requests[1].history[0].text == first.text
    assert [m.caption for m in result.missing] == ["a white sheep", "thick oil strokes"]


def test_generation_mode_through_the_rule_based_fake():
    result = FakeCritic(protocol="paper", decision="skip").critique(PROMPT, FakeGenerator().generate(PROMPT))
    assert not result.matches and [m.concept for m in result.missing] == ["oil painting", "sheep", "car"]


def test_decision_skip_needs_the_paper_protocol():
    with pytest.raises(ValidationError, match="decision: skip .* set protocol: paper"):
        ScriptedCritic(decision="skip", protocol="three_step")


def test_personalization_shows_the_user_image_beside_the_generated_one():
    c = paper_critic(["No", CONCEPTS, CAPTIONS])
    c.critique(PROMPT, IMAGE, user_images=[USER])
    decide = c.requests[0]
    assert [im.getpixel((0, 0)) for im in decide.images] == [(200, 30, 30), (10, 20, 30)]
    assert decide.text.startswith("The first image is the user's own image")
    assert f'"{PROMPT}"' in decide.text and "Only answer yes or no." in decide.text
    assert c.requests[1].history[0].images == decide.images


def test_other_modes_note_that_user_images_are_not_shown():
    c = ScriptedCritic(answers=["Yes"], protocol="three_step")
    result = c.critique(PROMPT, IMAGE, user_images=[USER])
    assert len(c.requests[0].images) == 1 and "not shown to the critic" in result.notes[0]


class RecordingCritic(Critic[Options]):
    name = "recording"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[list[tuple[int, int, int]]] = []

    def critique(self, prompt, image, *, max_concepts=3, user_images=()) -> Critique:
        self.seen.append([im.convert("RGB").getpixel((0, 0)) for im in user_images])
        return Critique(matches=True)


def test_the_pipeline_passes_the_user_images(tmp_path):
    path = tmp_path / "me.png"
    USER.save(path)
    critic = RecordingCritic()
    ImageRAG(FakeGenerator(), critic, FakeRetriever()).run(PROMPT, user_images=[path], out=None)
    assert critic.seen == [[(200, 30, 30)]]
    paper = paper_critic(["Yes"])
    ImageRAG(FakeGenerator(), paper, FakeRetriever()).run(PROMPT, user_images=[path], out=None)
    assert len(paper.requests[0].images) == 2


def test_fake_profile_critic_runs_the_paper_protocol_end_to_end():
    critic = FakeCritic(protocol="paper")
    run = ImageRAG(FakeGenerator(), critic, FakeRetriever()).run(PROMPT, out=None)
    [first, *_] = run.critiques
    assert [x.stage for x in first.exchanges] == ["decide", "concepts", "captions"]
    assert [m.caption for m in first.missing] == ["a photo of oil painting", "a photo of sheep",
                                                  "a photo of car"]
