"""Secrets kept out of everything the SDK writes or prints: run folders, reports, plugin
tracebacks, one-line errors. A secret is a value read from a profile's ``{$env: …}`` or an
environment variable whose name looks like a credential (``…_API_KEY``, ``…_TOKEN`` …)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

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
