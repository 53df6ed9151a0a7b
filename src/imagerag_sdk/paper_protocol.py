"""The paper's critic protocol (``protocol: paper``): the appendix C prompts word for word, asked as
one conversation.

The four prompts below are quoted from ImageRAG, appendix C (Shalev-Arkushin et al., arXiv
2502.09411), with the paper's typographic quotation marks sent as plain ``"`` and ``{prompt}``
the user's prompt. As in the authors' released code, the questions form one multi-turn
conversation: the decision goes first with the image(s); when the answer is not "yes", the
missing-concepts question follows with the decision and its answer in the history, then the
captions question with both earlier turns. The images travel in the first user turn, so every
request carries them once. Each question climbs the core's retry ladder on its own; only the
answer that was used enters the history.

Two behaviours of the authors' code that the paper does not quote, in our own wording
(:data:`GENERATION`, :func:`decision_text` with user images):

* ``decision: skip`` — the generation mode: no decision; ask which visual concepts a model needs
  to draw the prompt (with the user's images, if any, not the generated one), then the paper's
  captions question.
* personalization — with user images the decision shows them first and the generated image
  last, and asks whether the last one is the prompt applied to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import parsing
from .critique import Turn, VLMAnswer, parse_rephrased
from .types import Critique, MissingConcept

if TYPE_CHECKING:
    from PIL import Image

    from .critique import _Run

# -- ImageRAG, appendix C (verbatim; tests/data/paper-appendix-c.md holds the quoted text) -----
DECISION = ('Does this image match the prompt "{prompt}"? Consider both content and style aspects. '
            'Only answer yes or no.')
MISSING_CONCEPTS = (
    "What are the differences between this image and the required prompt? In your answer only "
    "provide missing concepts in terms of content and style, each in a separate line. For "
    'example, if the prompt is "An oil painting of a sheep and a car" and the image is a painting '
    "of a car but not an oil painting, the missing concepts will be:\n"
    "oil painting style\n"
    "a sheep")
CAPTIONS = (
    "For each concept you suggested above, please suggest an image caption describing an image "
    "that explains this concept only. The captions should be stand-alone description of the "
    "images, assuming no knowledge of the given images and prompt, that I can use to lookup "
    "images with automatically. In your answer only provide the image captions, each in a new "
    "line with nothing else other than the caption.")
REPHRASE = (
    "Please rephrase the following prompt to make it easier and clearer for the text-to-image "
    "generation model that generated the above image for this prompt. The goal is to generate an "
    "image that matches the given text prompt. If the prompt is already clear, return it as it "
    "is. Simplify and shorten long descriptions of known objects/entities but DO NOT change the "
    "original meaning of the text prompt. If the prompt contains rare words, change those words "
    'to a description of their meaning. In your answer only provide the prompt and nothing else. '
    'The prompt to be rephrased: "{prompt}".')

# -- not quoted by the paper: our wording of the authors' two further behaviours ---------------
GENERATION = (
    'Which visual concepts does a text-to-image model need to know to draw an image of the prompt '
    '"{prompt}"? Think of the objects that must appear in it, their attributes, and its style. '
    'For example, for the prompt "A cat sleeping on a piano" two concepts are: a cat, a piano. '
    "In your answer only provide the concepts, each in a separate line.")
PERSONALIZED_DECISION = (
    "{users} the user's own {noun}; the last image was generated from {pronoun}. Does the last "
    'image match the prompt "{prompt}" applied to the user\'s {noun}? Consider both content and '
    "style aspects. Only answer yes or no.")
_ASSUMED_NO = "No"
"""The decision's place in the history when the model gave no readable answer at all."""


def decision_text(prompt: str, user_images: int = 0) -> str:
    """The decision question: the paper's, or with user images the personalization one."""
    if not user_images:
        return DECISION.format(prompt=prompt)
    one = user_images == 1
    return PERSONALIZED_DECISION.format(
        users="The first image is" if one else f"The first {user_images} images are",
        noun="image" if one else "images", pronoun="it" if one else "them", prompt=prompt)


def _concepts(answer: VLMAnswer) -> list[str] | None:
    return parsing.parse_list(answer.text) or None


def critique(run: _Run, prompt: str, n: int, user_images: tuple[Image.Image, ...]) -> Critique:
    """Decision → missing concepts → captions (or, with ``decision: skip``, needed concepts →
    captions) in one conversation; at most ``n`` concepts kept."""
    history: list[Turn] = []
    if run.critic.options.decision == "skip":
        text = GENERATION.format(prompt=prompt)
        concepts = run.ladder("concepts", text, images=user_images, parse=_concepts)
        images = user_images
    else:
        images = user_images + run.own_image
        text = decision_text(prompt, len(user_images))
        verdict = run.ladder("decide", text, images=images,
                             parse=lambda a: parsing.parse_yes_no(a.text))
        if verdict:
            return run.result(True, [])
        answer = run.last_text.strip()
        if verdict is None:
            run.notes.append("no yes/no answer after retries: treated as not matching")
            if not answer:
                run.notes.append(f"the decision had no readable answer: the conversation goes on "
                                 f"with '{_ASSUMED_NO}' as its answer")
        history.append(Turn(run.last_body or text, images, answer or _ASSUMED_NO))
        text, images = MISSING_CONCEPTS, ()
        concepts = run.ladder("concepts", text, history=tuple(history), parse=_concepts)
    if not concepts:
        run.notes.append("the critic named no missing concept after retries")
        return run.result(False, [], gave_up=True)
    history.append(Turn(run.last_body or text, images, run.last_text))
    # the captions question covers every concept the model suggested; the budget cuts after
    captions = run._captions(concepts, CAPTIONS, tuple(history))
    kept = run._keep(concepts, n)
    return run.result(False, [MissingConcept(c, captions[c]) for c in kept])


def rephrase(run: _Run, prompt: str, critique: Critique | None,
             user_images: tuple[Image.Image, ...]) -> str | None:
    """The paper's rephrase question, after the decision turn of ``critique`` (its question with
    the image, its answer) when the image and that critique are given; alone otherwise."""
    history: tuple[Turn, ...] = ()
    decided = [x for x in (critique.exchanges if critique else ()) if x.stage == "decide"]
    if run.image is not None and decided:
        last = next((x for x in reversed(decided) if x.error is None), decided[-1])
        readable = last.answer.strip() and not (last.error or "").startswith("malformed")
        history = (Turn(last.prompt, user_images + run.own_image,
                        last.answer.strip() if readable else _ASSUMED_NO),)
    return run.ladder("rephrase", REPHRASE.format(prompt=prompt), history=history,
                      parse=parse_rephrased)
