"""BM25 over captions with bm25s: a tokenizer, candidate scoring, and a corpus-wide index.

``bm25s`` (and PyStemmer, when stemming is asked for) is imported on first use, never when this
module is imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagerag_sdk.errors import ConfigError, MissingDependencyError, install_hint

from . import saved

# language code → name of the list in ``bm25s.stopwords``
STOPWORD_LISTS = {
    "en": "STOPWORDS_EN", "en_plus": "STOPWORDS_EN_PLUS", "de": "STOPWORDS_GERMAN",
    "nl": "STOPWORDS_DUTCH", "fr": "STOPWORDS_FRENCH", "es": "STOPWORDS_SPANISH",
    "pt": "STOPWORDS_PORTUGUESE", "it": "STOPWORDS_ITALIAN", "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH", "no": "STOPWORDS_NORWEGIAN", "da": "STOPWORDS_DANISH",
    "tr": "STOPWORDS_TURKISH", "zh": "STOPWORDS_CHINESE", "ko": "STOPWORDS_KOREAN",
}


def import_bm25s():
    try:
        import bm25s
    except ImportError as exc:
        raise MissingDependencyError(
            "the BM25 rerankers need the 'bm25s' package",
            hint=install_hint("imagerag-bm25") + " (or pip install bm25s)") from exc
    return bm25s


@dataclass(frozen=True)
class TokenizerSettings:
    """How captions and queries are split into terms (the same rule for both)."""

    stopwords: str | tuple[str, ...] = "en"
    """A language code of bm25s's lists ("en", "de", …), "none", or explicit words."""
    stemmer: str | None = None
    """A PyStemmer language ("english"); ``None`` = no stemming."""
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"


class Tokenizer:
    """Regex tokenizer with stopwords and optional stemming; built once, then pure Python."""

    def __init__(self, settings: TokenizerSettings) -> None:
        self.settings = settings
        self.pattern = re.compile(settings.token_pattern)
        self.stopwords = frozenset(w.lower() if settings.lowercase else w
                                   for w in _stopword_list(settings.stopwords))
        self.stem: Callable[[str], str] | None = _stemmer(settings.stemmer)

    def __call__(self, text: str) -> list[str]:
        if self.settings.lowercase:
            text = text.lower()
        terms = [t for t in self.pattern.findall(text or "") if t not in self.stopwords]
        if self.stem is not None:
            terms = [self.stem(t) for t in terms]
        return terms


def _stopword_list(spec: str | Sequence[str]) -> Iterable[str]:
    if not isinstance(spec, str):
        return spec
    if spec.lower() in ("none", ""):
        return ()
    const = STOPWORD_LISTS.get(spec.lower())
    if const is None:
        raise ConfigError(f"unknown stopword language '{spec}'",
                          hint=f"use one of {', '.join(STOPWORD_LISTS)}, 'none', or a list of words")
    import_bm25s()
    from bm25s import stopwords

    return getattr(stopwords, const)


def _stemmer(language: str | None) -> Callable[[str], str] | None:
    if not language:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError as exc:
        raise MissingDependencyError("stemming needs the 'PyStemmer' package",
                                     hint="pip install PyStemmer, or set stemmer: null") from exc
    try:
        stemmer = Stemmer.Stemmer(language)
    except KeyError as exc:
        raise ConfigError(f"PyStemmer has no stemmer for '{language}'",
                          hint=f"use one of {', '.join(Stemmer.algorithms())}") from exc
    return stemmer.stemWord


@dataclass(frozen=True)
class BM25Params:
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"


def bm25_scores(query: str, docs: Sequence[str], tokenizer: Tokenizer, params: BM25Params) -> np.ndarray:
    """BM25 score of each document for ``query``, the statistics (IDF, mean length) taken over
    ``docs`` themselves. Zero for every document when nothing matches."""
    scores = np.zeros(len(docs), dtype=np.float64)
    q = tokenizer(query)
    tokens = [tokenizer(d) for d in docs]
    vocab = {t for doc in tokens for t in doc}
    q = [t for t in q if t in vocab]
    if not q:
        return scores
    model = _model(tokens, params)
    scores[:] = model.get_scores(q)
    return scores


def _model(tokens: list[list[str]], params: BM25Params):
    bm25s = import_bm25s()
    model = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
    model.index(tokens, show_progress=False)
    return model


class BM25Index:
    """BM25 over every caption of a corpus: ``search(text, k)`` → ``[(path, score), …]``.

    Built in memory from ``(path, caption)`` or ``(path, caption, metadata)`` tuples (items
    without a caption are left out). :meth:`from_jsonl` reads a JSON Lines file of
    ``{"path": …, "caption": …}`` objects; :meth:`from_corpus` reads the captions of a corpus
    built by ``imagerag index``."""

    def __init__(self, items: Iterable[tuple], *, tokenizer: Tokenizer | None = None,
                 params: BM25Params = BM25Params(), name: str = "",
                 save_dir: str | Path | None = None) -> None:
        """``save_dir``: keep the built index there and load it instead of building when the
        same captions, tokenizer and parameters come again (see :mod:`imagerag_bm25.saved`)."""
        self.tokenizer = tokenizer or Tokenizer(TokenizerSettings())
        self.params = params
        self.name = name
        self.loaded_from: Path | None = None
        """The saved index this one was loaded from (``None``: built in this process)."""
        rows = [(str(path), caption or "", rest[0] if rest else {}) for path, caption, *rest in items]
        folder = Path(save_dir).expanduser() if save_dir is not None else None
        key = ""
        got = None
        if folder is not None:
            bm25s = import_bm25s()
            key = saved.index_key([(p, c) for p, c, _ in rows], self._settings(), bm25s.__version__)
            got = saved.load(folder, key, bm25s, len(rows))
        kept: list[int]
        if folder is not None and got is not None:  # got is only loaded from a folder
            self._model, positions = got
            kept = positions.tolist()
            self.vocab = set(self._model.vocab_dict)
            self.loaded_from = folder / key[:32]
        else:
            kept, tokens = [], []
            for i, (_, caption, _) in enumerate(rows):
                terms = self.tokenizer(caption)
                if terms:
                    kept.append(i)
                    tokens.append(terms)
            self.vocab = {t for doc in tokens for t in doc}
            self._model = _model(tokens, params) if tokens else None
            if folder is not None and self._model is not None:
                saved.save(folder, key, self._model, kept)
        self.paths = [rows[i][0] for i in kept]
        self.captions = [rows[i][1] for i in kept]
        self.metadata = [{**rows[i][2], "caption": rows[i][1]} for i in kept]

    def _settings(self) -> dict[str, Any]:
        """What a saved index depends on besides the captions."""
        s = self.tokenizer.settings
        stemmer_version = ""
        if s.stemmer:
            from importlib.metadata import PackageNotFoundError, version

            try:
                stemmer_version = version("PyStemmer")
            except PackageNotFoundError:
                stemmer_version = "?"
        return {"stopwords": sorted(self.tokenizer.stopwords), "stemmer": s.stemmer,
                "stemmer_version": stemmer_version, "lowercase": s.lowercase,
                "pattern": s.token_pattern, "k1": self.params.k1, "b": self.params.b,
                "method": self.params.method}

    def __len__(self) -> int:
        return len(self.paths)

    def scores(self, text: str) -> np.ndarray:
        """Score of every indexed item (in ``paths`` order) for ``text``."""
        q = [t for t in self.tokenizer(text) if t in self.vocab]
        if not q or self._model is None:
            return np.zeros(len(self.paths), dtype=np.float64)
        return np.asarray(self._model.get_scores(q), dtype=np.float64)

    def search(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best items with a positive score, best first (ties: indexing order)."""
        scores = self.scores(text)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.paths[i], float(scores[i])) for i in order if scores[i] > 0]

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: Any) -> BM25Index:
        """Relative ``path`` entries resolve against the file's folder."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"captions file {file} does not exist",
                              hint='write one {"path": ..., "caption": ...} object per line')
        items = []
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item_path, caption = row["path"], row.get("caption") or ""
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{file}:{n}: not a {{\"path\", \"caption\"}} JSON object ({exc})",
                                  hint="write one JSON object per line") from exc
            p = Path(item_path).expanduser()
            items.append((str((p if p.is_absolute() else file.parent / p).resolve()), str(caption)))
        return cls(items, **kwargs)

    @classmethod
    def from_corpus(cls, corpus: str | None = None, index_dir: str | Path | None = None,
                    *, save: bool = True, **kwargs: Any) -> BM25Index:
        """The captions of an indexed corpus (by name, or by its index folder); paths are
        absolute, as the ``index`` retriever returns them. Items that now resolve outside the
        corpus root are left out. ``save``: keep the built index in the corpus folder
        (``bm25/``) and load it in later processes while the captions stay the same."""
        from imagerag_sdk.errors import CorpusError
        from imagerag_sdk.index.confine import RootGuard
        from imagerag_sdk.index.store import CorpusStore

        with CorpusStore.open(corpus, index_dir, write=False) as store:
            root = store.root
            if root is None:
                raise CorpusError(f"corpus '{store.name}' at {store.path} is empty",
                                  hint=f"index a folder into it first: imagerag index <folder> "
                                       f"--corpus {store.name}")
            name = store.meta.get("name") or store.name
            rows = sorted(store.items().values(), key=lambda item: item.label)
            folder = store.path / "bm25"
        guard = RootGuard(root)
        items = []
        for item in rows:
            if item.caption and (path := guard.path(item.path)) is not None:
                items.append((path, item.caption, item.metadata()))
        return cls(items, name=name, save_dir=folder if save else None, **kwargs)
