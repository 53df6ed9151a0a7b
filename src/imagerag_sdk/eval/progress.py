"""The evaluation's progress bar (rich, on stderr): one task per phase, with the count and an ETA."""

from __future__ import annotations

import os
import sys
from typing import Any


class Bar:
    """``with Bar(enabled) as bar: bar.phase("generate", n); bar.advance()``; disabled: does nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._label = ""

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            width = None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 120
            console = Console(stderr=True, highlight=False, markup=False, width=width)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[note]}"), console=console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, label: str, total: int) -> None:
        self._label = label
        if self._progress is not None:
            self._task = self._progress.add_task(label, total=total, note="")

    def note(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, note=text)

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, note="")
