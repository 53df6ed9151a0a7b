"""Where the SDK keeps its files. ``IMAGERAG_HOME`` (default ``~/.imagerag``) moves all of them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import CorpusError

_CORPUS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def home() -> Path:
    return Path(os.environ.get("IMAGERAG_HOME") or Path.home() / ".imagerag").expanduser()


def corpora_dir() -> Path:
    """Corpus indexes, one folder per corpus name."""
    return home() / "corpora"


def corpus_dir(corpus: str | None = None, index_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """The (name, folder) of a corpus given by name (under the corpora dir) or by folder."""
    if index_dir is not None:
        path = Path(index_dir).expanduser().resolve()
        return corpus or path.name, path
    if not corpus:
        raise CorpusError("no corpus given", hint="pass --corpus NAME (or --index-dir PATH)")
    if not _CORPUS_NAME.match(corpus):
        raise CorpusError(f"invalid corpus name '{corpus}'",
                          hint="use letters, digits, '.', '_' and '-' (no leading dot or slash)")
    return corpus, corpora_dir() / corpus


def profiles_dir() -> Path:
    """User profiles (``*.yaml``), found after explicit paths and before the built-ins."""
    return Path(os.environ.get("IMAGERAG_PROFILES_DIR") or home() / "profiles").expanduser()


def cache_dir() -> Path:
    """Caches: tiny models, the fake corpus."""
    return home() / "cache"

