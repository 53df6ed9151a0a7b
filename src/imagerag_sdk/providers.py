"""Small helpers shared by API provider plugins: optional imports and API keys."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Sequence

from .errors import AuthenticationError, MissingDependencyError, install_hint


def require(module: str, distribution: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"the '{module}' package is not installed",
                                     hint=install_hint(distribution)) from exc


def api_key(secret: Any, env_names: Sequence[str], *, provider: str, hint: str) -> str:
    """The key from the option (a ``SecretStr`` or ``None``), else the first set variable of
    ``env_names``; :class:`AuthenticationError` with ``hint`` when there is none."""
    key = secret.get_secret_value() if secret is not None else ""
    for name in env_names:
        key = key or os.environ.get(name, "")
    if not key:
        raise AuthenticationError("no API key given", provider=provider, hint=hint)
    return key
