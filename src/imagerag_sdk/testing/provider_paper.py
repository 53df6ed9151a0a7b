"""The ``protocol: paper`` part of :class:`~imagerag_sdk.testing.provider_contract.ProviderCriticContract`:
the paper's questions reach the server as one conversation, through the provider's real client."""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from ..paper_protocol import CAPTIONS, DECISION, MISSING_CONCEPTS, REPHRASE
from .fake_server import FakeAPIServer, Request

PROMPT = "an oil painting of a sheep and a car"


class PaperConversationChecks:
    """Mixed into the provider contract, which supplies ``_critic``, ``sent_image_list``,
    ``temperature_options`` and the ``fake_server`` / ``picture`` fixtures."""

    temperature_options: ClassVar[dict[str, Any] | None] = {}

    def _critic(self, server: FakeAPIServer, **options: Any) -> Any:
        raise NotImplementedError

    def sent_image_list(self, request: Request) -> list[Image.Image]:
        raise NotImplementedError

    def test_paper_protocol_is_one_conversation(self, fake_server, picture):
        """The second and third requests carry the earlier questions, the image (once, in the
        first turn) and the model's earlier answers, as the server received them."""
        fake_server.reply("No").reply("oil painting style\na sheep").reply(
            "an oil painting with thick visible brush strokes\na white woolly sheep on green grass")
        got = self._critic(fake_server, protocol="paper", **(self.temperature_options or {})).critique(
            PROMPT, picture)
        assert [(m.concept, m.caption) for m in got.missing] == [
            ("oil painting style", "an oil painting with thick visible brush strokes"),
            ("a sheep", "a white woolly sheep on green grass")]
        sent = [[m for m in r.conversation() if m[0] != "system"] for r in fake_server.requests]
        decision = ("user", DECISION.format(prompt=PROMPT), 1)
        concepts = [decision, ("assistant", "No", 0), ("user", MISSING_CONCEPTS, 0)]
        assert sent == [[decision], concepts,
                        concepts + [("assistant", "oil painting style\na sheep", 0), ("user", CAPTIONS, 0)]]
        for request in fake_server.requests:
            [image] = self.sent_image_list(request)
            assert image.size == picture.size and image.convert("RGB").getpixel((10, 10)) == \
                picture.getpixel((10, 10))

    def test_paper_personalization_sends_the_user_image_first(self, fake_server, picture):
        fake_server.reply("Yes")
        user = Image.new("RGB", (64, 64), (250, 10, 10))
        got = self._critic(fake_server, protocol="paper").critique(PROMPT, picture, user_images=[user])
        assert got.matches is True
        images = self.sent_image_list(fake_server.requests[0])
        assert [im.size for im in images] == [(64, 64), picture.size]
        assert images[0].convert("RGB").getpixel((5, 5)) == (250, 10, 10)

    def test_paper_rephrase_follows_the_decision(self, fake_server, picture):
        fake_server.reply("No").reply("I am unable to respond.").reply(
            "an oil painting of a white sheep beside a red car")
        critic = self._critic(fake_server, protocol="paper", retries=0)
        crit = critic.critique(PROMPT, picture)  # no concept named: the critique gives up
        assert crit.gave_up
        new, _ = critic.rephrase(PROMPT, image=picture, critique=crit)
        assert new == "an oil painting of a white sheep beside a red car"
        last = [m for m in fake_server.requests[-1].conversation() if m[0] != "system"]
        assert last == [("user", DECISION.format(prompt=PROMPT), 1), ("assistant", "No", 0),
                        ("user", REPHRASE.format(prompt=PROMPT), 0)]
