"""What changed in a corpus's folder since it was indexed: the walk's files against the rows.

A re-run compares each file's ``(path, size, mtime_ns, sidecar signature)`` from the walk with
the row of that path (:func:`compare`). At a million files reading the rows costs more than the
rest of the comparison (~1 s of tuples, then a sort), so a run that found nothing changed also
records a digest of its walk, with the items state it compared against: the meta value
``walk_digest`` = ``<items_token>:<sha-256 of the walk's stats>``. ``items_token``
(:mod:`.records`) changes with any change to any item (triggers set it ``dirty`` in the same
transaction, by any writer), so while it still holds that token the rows are the ones the walk
matched, and a walk with the same digest matches them too: the rows are not read
(:func:`unchanged_since`). A walk that differs in anything, a token ``dirty`` or new, a digest
missing (a corpus indexed by older code, or on a platform without the record file) all take the
full comparison, with the same answers.

The digest is over ``marshal.dumps`` of the stats in the walk's order (deterministic: each
folder's files sorted, folders visited by name). Equal bytes mean equal stats; a Python whose
``marshal`` writes other bytes for the same stats only costs a full comparison.
"""

from __future__ import annotations

import hashlib
import marshal

from .items import Known
from .records import DIRTY, TOKEN
from .scan import Stat
from .store import CorpusStore

DIGEST = "walk_digest"


def walk_digest(stats: list[Stat]) -> str:
    """The digest of a walk's stats (~0.15 s at a million files)."""
    return hashlib.sha256(marshal.dumps(stats)).hexdigest()


def items_state(store: CorpusStore) -> str | None:
    """The token of the items' current state, or ``None`` when it names none (``dirty``)."""
    token = store.meta_value(TOKEN)
    return None if token in (None, DIRTY) else token


def unchanged_since(store: CorpusStore, state: str | None, digest: str) -> bool:
    """Whether a run that found nothing changed recorded this walk's ``digest`` against the
    items state ``state`` (read before, under the writer's lock): then nothing changed."""
    return state is not None and store.meta_value(DIGEST) == f"{state}:{digest}"


def note_unchanged(store: CorpusStore, state: str | None, digest: str) -> None:
    """Record that the walk of ``digest`` matched the items in ``state`` (read before the
    comparison): written only if the items are still in that state (one statement, so a change
    in between, which sets the token ``dirty``, leaves nothing recorded)."""
    if state is None:
        return
    with store.writing():
        store.db.execute("INSERT OR REPLACE INTO meta(key, value) SELECT ?, ? "
                         "WHERE (SELECT value FROM meta WHERE key = ?) IS ?",
                         (DIGEST, f"{state}:{digest}", TOKEN, state))


def compare(store: CorpusStore, stats: list[Stat]) -> tuple[list[Stat], dict[str, Known], list[str]]:
    """(the walk's files that differ from their row or have none, sorted by path; the rows of
    those that have one; the paths indexed that the walk did not find, sorted).

    The walk's (path, size, mtime_ns, sidecar signature) against the rows', read in one query as
    tuples: no object per unchanged file. Sorted (the rows come nearly in path order), the two
    lists are equal when nothing changed: a sequential pass, cheaper at a million files than
    looking every row up in a set of the walk's, whose lookups miss the caches. Else both become
    sets, and only the rows that differ are read whole (all of them past a quarter)."""
    rows = store.file_stats()
    if len(rows) == len(stats):
        if rows == stats:  # a corpus indexed in one run: its rows come in the walk's order
            return [], {}, []
        rows.sort()
        if rows == sorted(stats):
            return [], {}, []
    walk, stored = set(stats), set(rows)
    del rows
    fresh = sorted(walk - stored)
    stale = {s[0] for s in stored - walk}
    if not stale:
        return fresh, {}, []
    differ = {s[0] for s in fresh} & stale
    known = store.known() if len(differ) > len(stored) // 4 else store.known_of(sorted(differ))
    return fresh, known, sorted(stale - differ)
