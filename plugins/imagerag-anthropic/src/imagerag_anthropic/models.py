"""Which Claude models take a sampling temperature.

Anthropic removed ``temperature`` (with ``top_p`` / ``top_k``) from the request surface starting
with Claude Opus 4.7: sending it to Opus 4.7, Opus 4.8, the Claude 5 family (Opus, Sonnet, Haiku 5,
Fable, Mythos) is a 400 ("temperature is deprecated for this model"), and the anthropic SDK 1.0+
dropped the keyword (it can still be sent in ``extra_body``). The rule here, by model id:

* Claude 1–3.x (``claude-2.1``, ``claude-3-5-sonnet-…``, ``claude-3-7-sonnet-latest``): takes one.
* Opus and Sonnet up to 4.6, Haiku up to 4.5 (``claude-sonnet-4-6``, ``claude-haiku-4-5-…``,
  ``claude-opus-4-1@…``): takes one.
* Every other Claude id (Opus 4.7+, any 5.x, Fable, Mythos, ids this rule does not know): none —
  new models are assumed to follow the current API.
* A model id without "claude" (an Anthropic-compatible server serving another model): takes one.

Bedrock / Vertex style ids (``us.anthropic.claude-…-v1:0``, ``claude-…@20250805``) are read the
same way. The ``send_temperature`` option overrides the rule.
"""

from __future__ import annotations

import re

_OLD = re.compile(r"claude-(\d+)(?:[-.]\d+)?(?![\d])")          # claude-3-5-sonnet, claude-2.1
_NEW = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d{1,2})(?!\d))?")  # claude-sonnet-4-5-20250929
_LAST_WITH_TEMPERATURE = {"opus": (4, 6), "sonnet": (4, 6), "haiku": (4, 5)}


def accepts_temperature(model: str) -> bool:
    """Whether the Anthropic API takes a ``temperature`` for ``model`` (see the module doc)."""
    name = model.lower()
    if "claude" not in name:
        return True
    old = _OLD.search(name)
    if old:
        return int(old.group(1)) <= 3
    new = _NEW.search(name)
    if new:
        family, major, minor = new.group(1), int(new.group(2)), int(new.group(3) or 0)
        if family == "instant":
            return True
        last = _LAST_WITH_TEMPERATURE.get(family)
        return last is not None and (major, minor) <= last
    return False
