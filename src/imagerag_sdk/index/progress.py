"""A rich progress bar on stderr: items done, items/s, elapsed and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """Implements the ``Progress`` protocol of :func:`imagerag_sdk.index.ingestion.ingest`."""

    def __init__(self, description: str = "indexing", console: Console | None = None,
                 unit: str = "img") -> None:
        self.description = description
        self.unit = unit
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total, rate="")

    def advance(self, n: int = 1) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.advance(self._task, n)
        speed = self._progress.tasks[0].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:.1f} {self.unit}/s")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
