"""The Hugging Face hub's offline setting, read one way for every local-model plugin.

huggingface_hub goes offline when ``HF_HUB_OFFLINE`` (or, when that is unset or empty,
``TRANSFORMERS_OFFLINE``) is one of ``1``, ``on``, ``yes``, ``true`` in any case; this module
accepts exactly those, so an error message never claims the hub is offline when it is not.
huggingface_hub reads the variables once, at import; this reads them on each call.
"""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_setting() -> str | None:
    """The setting that puts the hub offline, as ``NAME=value`` (``"HF_HUB_OFFLINE=1"``) for
    error messages, or ``None`` when the hub is online."""
    for name in VARIABLES:
        value = os.environ.get(name)
        if value:  # the first non-empty one decides, as in huggingface_hub
            return f"{name}={value}" if value.upper() in TRUE_VALUES else None
    return None


def offline() -> bool:
    """Whether the Hugging Face hub is set to offline (see :func:`offline_setting`)."""
    return offline_setting() is not None
