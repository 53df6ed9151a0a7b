"""CLI commands for corpora: ``imagerag index`` and ``imagerag search`` (filled in by the index work)."""

from __future__ import annotations

import click


def add_commands(group: click.Group) -> None:
    """Attach the corpus commands to the root group."""
