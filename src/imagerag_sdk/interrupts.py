"""SIGTERM handled like Ctrl-C, so a stopped run still finishes its run folder.

``kill``, ``timeout``, ``docker stop``, systemd and Kubernetes stop a process with SIGTERM, whose
default action ends Python at once: no ``finally``, a trace left at ``running`` and no report.
Inside :func:`sigterm_as_interrupt`, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)
instead, so the pipeline takes its Ctrl-C path: the trace says ``interrupted`` and the report is
written. ``imagerag generate`` runs inside it and then exits with 143 (128 + 15).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM inside :func:`sigterm_as_interrupt`."""

    exit_code = 128 + signal.SIGTERM

    def __init__(self) -> None:
        super().__init__("terminated by SIGTERM")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the duration; restore the previous handler after.

    Signal handlers belong to the main thread: called from any other thread (a web server's
    worker), this does nothing, and the application's own handling stays in charge."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back; the default is
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
