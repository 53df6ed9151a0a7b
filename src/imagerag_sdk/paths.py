"""Where the SDK keeps its files. ``IMAGERAG_HOME`` (default ``~/.imagerag``) moves all of them."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("IMAGERAG_HOME") or Path.home() / ".imagerag").expanduser()


def corpora_dir() -> Path:
    """Corpus indexes, one folder per corpus name."""
    return home() / "corpora"


def profiles_dir() -> Path:
    """User profiles (``*.yaml``), found after explicit paths and before the built-ins."""
    return Path(os.environ.get("IMAGERAG_PROFILES_DIR") or home() / "profiles").expanduser()


def cache_dir() -> Path:
    """Caches: tiny models, the fake corpus."""
    return home() / "cache"


def runs_dir() -> Path:
    return Path("runs")
