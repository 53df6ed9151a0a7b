"""A generator the tests hold at a gate, in the server's process or in a job worker process.

Everything crosses processes through files of one folder (a worker may be SIGKILLed while it
waits, which would leave a multiprocessing lock or event broken): ``calls`` gets a line per
generator call (``pid prompt``), ``entered`` appears when a call starts, and the call waits until
``gate`` exists. Imported by its top-level name (conftest puts this folder on ``sys.path``, which
spawned workers inherit), so ``functools.partial(build, …)`` pickles into a worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from imagerag_sdk.index import IndexRetriever
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing.fakes import FakeCritic, FakeGenerator
from imagerag_sdk.types import Reference

WAIT = 60  # seconds anything here waits before failing (never a timing assertion)


class GatedGenerator(FakeGenerator):
    """A FakeGenerator whose calls are logged to ``folder/calls`` and wait for ``folder/gate``;
    with ``fail_with`` a call raises ``RuntimeError(fail_with)`` once let through; with
    ``load_fails`` its ``load()`` raises ``RuntimeError(load_fails)``, as it does while the file
    ``folder/load-fails`` exists (with its text)."""

    name = "gated"

    def __init__(self, *args, folder: str, fail_with: str | None = None, load_fails: str | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.folder, self.fail_with, self.load_fails = Path(folder), fail_with, load_fails

    def _load(self) -> None:
        if self.load_fails is not None:
            raise RuntimeError(self.load_fails)
        if (self.folder / "load-fails").exists():
            raise RuntimeError((self.folder / "load-fails").read_text())
        super()._load()

    def generate(self, prompt: str, references: Sequence[Reference] = (), *, seed: int | None = None):
        with open(self.folder / "calls", "a") as f:
            f.write(f"{os.getpid()} {prompt}\n")
        (self.folder / "entered").touch()
        if not wait_for(self.folder / "gate"):
            raise AssertionError("the test never opened the gate")
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        return super().generate(prompt, references, seed=seed)


def build(index_dir: str, folder: str, fail_with: str | None = None, secrets: tuple[str, ...] = (),
          load_fails: str | None = None) -> ImageRAG:
    """The tests' pipeline: the gated generator, the fake critic, the corpus index."""
    gen = GatedGenerator(size=32, max_references=2, folder=folder, fail_with=fail_with, load_fails=load_fails)
    return ImageRAG(gen, FakeCritic(), IndexRetriever(index_dir=index_dir, dedupe=None), profile="web-test",
                    secrets=secrets)


def wait_for(path: Path, wait: float = WAIT) -> bool:
    """Whether ``path`` exists within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Gate:
    """The test's side of one gated generator's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def open(self) -> None:
        (self.folder / "gate").touch()

    def wait_entered(self) -> bool:
        """A call has started (and not been waited for yet)."""
        ok = wait_for(self.folder / "entered")
        (self.folder / "entered").unlink(missing_ok=True)
        return ok

    def calls(self) -> list[tuple[int, str]]:
        path = self.folder / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(int(pid), prompt) for pid, prompt in (line.split(" ", 1) for line in lines)]
