"""Secrets kept out of everything the SDK writes or prints: run folders, reports, plugin
tracebacks, one-line errors. A secret is a value read from a profile's ``{$env: …}`` or an
environment variable whose name looks like a credential (``…_API_KEY``, ``…_TOKEN`` …)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)$", re.I)
MASK = "***"


def env_secrets() -> set[str]:
    """Values of environment variables that look like credentials (…_API_KEY, …_TOKEN …)."""
    return {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8}


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with each secret (default: :func:`env_secrets`) replaced by ``***``, longest first
    so that a secret containing another is masked whole."""
    for secret in sorted(env_secrets() if secrets is None else set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


SECRET_FIELD = re.compile(r"(key|token|secret|password|credential)", re.I)
"""Option names whose values are secrets (``api_key``, ``token`` …)."""
MASKED = "**********"
"""What a masked option value reads as (as a described component's secret options do)."""


def mask_spec(value: Any) -> Any:
    """A component spec (nested mappings and lists) with the values of secret-looking options
    masked; ``{$env: NAME}`` references stay, as they name a variable and hold no secret."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            return value
        return {k: MASKED if SECRET_FIELD.search(str(k)) and v is not None and not _env_ref(v) else mask_spec(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_spec(v) for v in value]
    return value


def _env_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$env"}
