"""``imagerag eval compare DIR_A DIR_B``: two eval output folders side by side. Thin: the work is
:func:`imagerag_sdk.eval.compare.write_compare`'s."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import ConfigError

MAX_ITEMS = 48  # the grid's default; eval.results.MAX_ITEMS (not imported here: the CLI stays light)


def _pair(text: str) -> tuple[str, str]:
    first, sep, second = text.partition("=")
    if not sep or not first.strip() or not second.strip():
        raise ConfigError(f"--pair '{text}' is not SYSTEM_A=SYSTEM_B", hint="e.g. --pair fused=paper")
    return first.strip(), second.strip()


@click.command("compare")
@click.argument("dir_a", type=click.Path(exists=True, file_okay=False))
@click.argument("dir_b", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Folder for compare.md and compare.html (default: ./compare-<A>-vs-<B>).")
@click.option("--pair", "pairs", multiple=True, metavar="SYSTEM_A=SYSTEM_B",
              help="Also compare these differently named systems (repeatable); systems of the same "
                   "name are compared anyway.")
@click.option("--max-items", type=click.IntRange(0), default=MAX_ITEMS, show_default=True,
              help="Items × seeds in the thumbnail grid (0: all).")
def compare_cmd(dir_a: str, dir_b: str, out: str | None, pairs: tuple[str, ...], max_items: int) -> None:
    """Put two eval output folders side by side: every system's scores, and for the systems both
    hold the per-item paired difference of the final scores (B − A) with a bootstrap interval."""
    from .eval.compare import write_compare

    target = Path(out) if out else Path(f"compare-{Path(dir_a).resolve().name}-vs-{Path(dir_b).resolve().name}")
    written = write_compare(dir_a, dir_b, target, pairs=[_pair(p) for p in pairs], max_items=max_items or None)
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(str(written.markdown))
    click.echo(str(written.html))
