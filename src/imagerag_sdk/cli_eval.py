"""``imagerag eval``: run an evaluation (``eval run``, also ``imagerag eval SET …``) and build benchmark
sets (``eval build-set``). Thin: the logic is in :mod:`imagerag_sdk.eval`; nothing heavy at import."""

from __future__ import annotations

from typing import Any

import click

from .cli_eval_compare import MAX_ITEMS, compare_cmd
from .errors import ConfigError


class _EvalGroup(click.Group):
    """A group whose first word, when it is not one of its commands, starts ``run``:
    ``imagerag eval SET --profile P`` is ``imagerag eval run SET --profile P``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Measure what retrieval does to the images (docs/evaluation.md).

    'imagerag eval SET --profile P …' is 'imagerag eval run SET --profile P …'."""


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s != ""]
    except ValueError:
        raise ConfigError(f"--seeds '{text}' is not a comma-separated list of integers", hint="e.g. --seeds 0,1,2") from None


@eval_group.command("run")
@click.argument("set_file", metavar="SET", type=click.Path(dir_okay=False))
@click.option("--profile", "-p", "profiles", multiple=True, metavar="P",
              help="A system: a profile name or YAML path, named after it. Repeatable.")
@click.option("--system", "systems", multiple=True, metavar="'NAME=PROFILE KEY=VALUE …'",
              help="A named system: a profile and its own overrides (the same profile twice with different "
                   "overrides makes an ablation). Repeatable.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override for every system: a dotted profile key and a YAML value (loop.mode=concepts, "
                   "retriever.corpus=NAME, 'reranker={use: bm25}'). Repeatable.")
@click.option("--scorer", "scorers", multiple=True, metavar="SPEC",
              help="A registered scorer name (clip, siglip, dino, vlm) or an inline YAML mapping "
                   "'{use: clip, model: ViT-B-32}'. Repeatable.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds; one run per item and seed.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Result folder; running the same command again continues there.")
@click.option("--limit", type=click.IntRange(1), help="Only the set's first N items.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1),
              help="Units (initial + final image) per scorer call.")
@click.option("--max-items", type=click.IntRange(0), default=MAX_ITEMS, show_default=True,
              help="Items × seeds in results.html's image grid (0: all).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run_cmd(set_file: str, profiles: tuple[str, ...], systems: tuple[str, ...], overrides: tuple[str, ...],
            scorers: tuple[str, ...], seeds: str, out: str, limit: int | None, batch_size: int,
            max_items: int, no_progress: bool) -> None:
    """Run every item of SET × seed × system through the ImageRAG loop and score the initial image
    (without retrieval) and the final one (with it): rows.jsonl, rows.csv, summary.json, results.md
    and results.html in --out.

    Everything is checked before anything runs. Finished generations and scores are cached in
    OUT/cache: after Ctrl-C, SIGTERM or a crash, run the same command again to continue."""
    from .cli import _console, _refuse
    from .errors import ImageRAGError
    from .eval import runner
    from .interrupts import Terminated, sigterm_as_interrupt

    try:
        plan = runner.plan(set_file, runner.system_args(profiles, systems, overrides), list(scorers), out,
                           seeds=_seeds(seeds), limit=limit, batch_size=batch_size)
    except ImageRAGError as exc:
        _refuse(exc)
    try:
        with sigterm_as_interrupt():
            summary = runner.run(plan, show_progress=not no_progress, max_items=max_items or None)
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted: {plan.out / 'cache'} keeps every finished generation and score; run the same "
                   "command again to continue", err=True)
        raise SystemExit(exc.exit_code if isinstance(exc, Terminated) else 130) from None
    _print_summary(_console(stderr=False), summary)
    click.echo(str(plan.out))


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _print_summary(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("system", "metric", "n", "without (initial)", "with (final)", "final − initial [95% CI]",
                  "win rate", title=f"{summary['items']} item(s) × {len(summary['seeds'])} seed(s)")
    for system in summary["systems"]:
        failed = f" ({system['failed']} failed)" if system["failed"] else ""
        for metric, m in system["metrics"].items():
            d = m["diff"]
            table.add_row(system["name"] + failed, metric, str(d["n"]),
                          f"{_fmt(m['initial']['mean'])} ± {_fmt(m['initial']['se'])}",
                          f"{_fmt(m['final']['mean'])} ± {_fmt(m['final']['se'])}",
                          f"{_fmt(d['mean'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]", _fmt(m["win_rate"], 2))
    console.print(table)


@eval_group.command("build-set")
@click.argument("root", metavar="DATASET", type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The set file to write (.yaml).")
@click.option("--layout", default="auto", show_default=True,
              type=click.Choice(["auto", "folders", "imagenet", "cub", "inat", "aircraft"]),
              help="How DATASET is laid out (auto: detected).")
@click.option("--names", type=click.Path(dir_okay=False), help="Class names file ('<folder> <name>' per line, "
              "e.g. ImageNet's LOC_synset_mapping.txt); default: from the folder names.")
@click.option("--template", default="A photo of a {concept}", show_default=True, help="The prompt of each class.")
@click.option("--limit", type=click.IntRange(1), help="Sample this many classes (the same ones for the same --seed).")
@click.option("--seed", default=0, show_default=True, type=int, help="Sample seed of --limit.")
@click.option("--first", is_flag=True, help="With --limit: the first N classes in order instead of a sample.")
@click.option("--split", default="train", show_default=True,
              help="The split folder (ImageNet, iNaturalist) or label file (FGVC-Aircraft) to read.")
@click.option("--prefix", help="Item id prefix (default: the layout, or the folder's name).")
def build_set_cmd(root: str, out: str, layout: str, names: str | None, template: str, limit: int | None,
                  seed: int, first: bool, split: str, prefix: str | None) -> None:
    """Write a benchmark set with one item per class of a local DATASET folder (nothing is
    downloaded): the prompt from --template, the class's images as its real images."""
    from .eval.sets import build_items, write_set

    if not out.endswith((".yaml", ".yml")):
        raise ConfigError(f"--out {out}: the set file is YAML", hint="end it with .yaml")
    items = build_items(root, layout=layout, names_file=names, template=template, limit=limit, seed=seed,
                        prefix=prefix, split=split, first=first)
    path = write_set(out, items)
    click.echo(f"{len(items)} item(s), {sum(len(i.real_images) for i in items)} real image(s)", err=True)
    click.echo(str(path))


eval_group.add_command(compare_cmd)


def add_commands(group: click.Group) -> None:
    """Attach ``imagerag eval`` to the root group."""
    group.add_command(eval_group)
