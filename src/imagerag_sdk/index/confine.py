"""Where a corpus's files may be: the root's identity, and the guard that keeps item paths inside
the root (the walk, the search and the text index share them; confinement is checked once per item
when the index is opened, see :mod:`.corpus`)."""

from __future__ import annotations

import os


def root_identity(root: str | os.PathLike) -> str | None:
    """What tells a corpus root was replaced (by another folder, or by a link: ``lstat``), as
    ``dev:inode``; ``None`` when nothing is there."""
    try:
        st = os.lstat(root)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


class RootGuard:
    """Absolute paths of items under a corpus root, refusing those that now resolve outside it
    (a folder or file replaced by a symbolic link after indexing).

    ``cache_folders`` (bulk use over many items, within one moment): each folder is resolved once;
    a file then costs one ``lstat`` unless it is itself a link (then it is resolved). A long-lived
    guard leaves it off, so a folder replaced by a link later is still caught. ``real``: where
    the root resolved when it was indexed (default: where it resolves now)."""

    def __init__(self, root: str | os.PathLike, *, cache_folders: bool = True, real: str | None = None) -> None:
        self.root = str(root)
        self.real = os.path.realpath(root) if real is None else real
        self._folders: dict[str, bool] | None = {} if cache_folders else None

    def path(self, relpath: str) -> str | None:
        path = os.path.join(self.root, relpath)
        folder = os.path.dirname(path)
        ok = self._folders.get(folder) if self._folders is not None else None
        if ok is None:
            ok = inside(os.path.realpath(folder), self.real)
            if self._folders is not None:
                self._folders[folder] = ok
        if not ok or (os.path.islink(path) and not inside(os.path.realpath(path), self.real)):
            return None
        return path
