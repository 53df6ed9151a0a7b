"""The no-VLM clip critic on the tiny CLIP: both branches, the trace entries, the options."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from pydantic import ValidationError

from imagerag_sdk.types import Critique

pytestmark = pytest.mark.slow

PROMPT = "an oil painting of a sheep and a car, in the style of van gogh"
PHRASES = ["an oil painting", "a sheep", "a car", "van gogh style"]


@pytest.fixture
def clip_critic_image():
    img = Image.new("RGB", (64, 48), (200, 120, 40))
    img.paste((20, 60, 220), (10, 10, 40, 30))
    return img


@pytest.fixture(scope="module")
def clip_shared_embedder(clip_tiny):
    from imagerag_clip import ClipEmbedder

    return ClipEmbedder(clip_tiny, dtype="fp32", device="cpu").load()


def _scores(embedder, image):
    from imagerag_clip import ClipCritic

    critic = ClipCritic.from_embedder(embedder)
    texts = [PROMPT] + [f"a photo of {p}" for p in PHRASES]
    return [float(s) for s in critic.scores(image, texts)]


def test_clip_critic_match_branch(clip_shared_embedder, clip_critic_image):
    from imagerag_clip import ClipCritic

    prompt_score = _scores(clip_shared_embedder, clip_critic_image)[0]
    critic = ClipCritic.from_embedder(clip_shared_embedder, threshold=prompt_score - 0.01)
    result = critic.critique(PROMPT, clip_critic_image)
    assert isinstance(result, Critique) and result.matches and not result.missing and not result.gave_up
    assert [e.stage for e in result.exchanges] == ["clip"] * (1 + len(PHRASES))
    first = result.exchanges[0]
    assert first.prompt == PROMPT and first.parsed["kind"] == "prompt"
    assert first.parsed["score"] == pytest.approx(prompt_score, abs=1e-5)
    json.dumps(result.to_dict())


def test_clip_critic_missing_branch_lowest_first(clip_shared_embedder, clip_critic_image):
    from imagerag_clip import ClipCritic

    scores = _scores(clip_shared_embedder, clip_critic_image)
    phrase_scores = dict(zip(PHRASES, scores[1:], strict=True))
    cut = sorted(phrase_scores.values())[2]  # the two lowest phrases are below it
    critic = ClipCritic.from_embedder(clip_shared_embedder, threshold=min(1.0, scores[0] + 0.01),
                                      phrase_threshold=cut, caption_template="a picture of {concept}")
    result = critic.critique(PROMPT, clip_critic_image, max_concepts=3)
    assert not result.matches and not result.gave_up
    expected = sorted((p for p in PHRASES if phrase_scores[p] < cut), key=phrase_scores.get)
    assert [m.concept for m in result.missing] == expected and len(expected) == 2
    assert [m.caption for m in result.missing] == [f"a picture of {p}" for p in expected]
    phrase_entries = [e for e in result.exchanges if e.parsed["kind"] == "phrase"]
    assert [e.parsed["concept"] for e in phrase_entries] == PHRASES
    assert [e.parsed["below"] for e in phrase_entries] == [phrase_scores[p] < cut for p in PHRASES]
    assert all(e.images == 1 and float(e.answer) == pytest.approx(e.parsed["score"], abs=1e-4)
               for e in phrase_entries)
    # max_concepts caps the list, keeping the lowest
    capped = critic.critique(PROMPT, clip_critic_image, max_concepts=1)
    assert [m.concept for m in capped.missing] == expected[:1]


def test_clip_critic_gives_up_when_no_phrase_is_low(clip_shared_embedder, clip_critic_image):
    from imagerag_clip import ClipCritic

    critic = ClipCritic.from_embedder(clip_shared_embedder, threshold=1.0, phrase_threshold=-1.0)
    result = critic.critique(PROMPT, clip_critic_image)
    assert not result.matches and result.gave_up and not result.missing
    assert any("no phrase scored below" in n for n in result.notes)


def test_clip_critic_built_by_name_from_embedder_spec(clip_tiny, clip_critic_image, imagerag_registry):
    from imagerag_clip import ClipCritic
    from imagerag_sdk import build_component

    critic = build_component("critic", "clip", {"embedder": {"use": "clip", **clip_tiny, "dtype": "fp32"},
                                                "threshold": 1.0, "phrase_threshold": 1.0})
    assert isinstance(critic, ClipCritic)
    result = critic.critique("a sheep and a car", clip_critic_image, max_concepts=2)
    assert not result.matches and [m.concept for m in result.missing] and len(result.missing) == 2
    # the critic's embedder is the process-cached one the retriever would get with these options
    assert critic.embedder is build_component("embedder", "clip", {**clip_tiny, "dtype": "fp32"})
    json.dumps(critic.describe())


def test_clip_critic_options_validated():
    from imagerag_clip import ClipCritic

    with pytest.raises(ValidationError, match="concept"):
        ClipCritic(caption_template="a photo")
    with pytest.raises(ValidationError):
        ClipCritic(threshold=2.0)
    with pytest.raises(ValidationError):
        ClipCritic(unknown_option=1)
    assert ClipCritic().options.embedder.use == "clip"  # construction loads nothing
    with pytest.raises(NotImplementedError):
        ClipCritic().rephrase("a cat")


def test_clip_critic_takes_user_images_and_says_it_does_not_judge_them(clip_shared_embedder,
                                                                        clip_critic_image):
    from imagerag_clip import ClipCritic

    critic = ClipCritic.from_embedder(clip_shared_embedder)
    plain = critic.critique(PROMPT, clip_critic_image)
    personal = critic.critique(PROMPT, clip_critic_image, user_images=[Image.new("RGB", (8, 8))])
    assert personal.matches == plain.matches and personal.missing == plain.missing
    assert personal.notes == plain.notes + (
        "clip: 1 user image(s) not judged: only the generated image is compared with the prompt",)
