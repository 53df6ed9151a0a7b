"""CLI commands for corpora: ``imagerag index`` and ``imagerag search``. Thin: logic is in ``index/``."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from .errors import ConfigError, CorpusError


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--embedder-option '{pair}' is not key=value", hint="e.g. --embedder-option dim=128")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def _console(stderr: bool):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@click.command("index")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--corpus", "corpus", help="Corpus name (default: the folder's name).")
@click.option("--index-dir", type=click.Path(file_okay=False), help="Keep the index in this folder instead.")
@click.option("--embedder", "embedder_name", help="Registered embedder (default: the corpus's own, else clip).")
@click.option("--embedder-option", "embedder_options", multiple=True, metavar="KEY=VALUE",
              help="Embedder option (repeatable); values are YAML (numbers, true/false, strings).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Images per model call.")
@click.option("--workers", type=click.IntRange(1), help="Decoding threads (default: min(4, CPUs)).")
@click.option("--ext", "extensions", multiple=True, help="Image extensions to index (repeatable or comma-separated).")
@click.option("--max-pixels", type=click.IntRange(1), help="Refuse images with more pixels (decompression bombs).")
@click.option("--strict", is_flag=True, help="Exit non-zero if any file could not be indexed.")
@click.option("--full-decode", is_flag=True,
              help="Decode JPEGs at full size (default: the smallest DCT scale covering the model input).")
@click.option("--hnsw-m", type=int, help="HNSW graph degree M (default: the corpus's own, else 16); "
              "a new value rebuilds the graph from the stored vectors.")
@click.option("--ef-construction", type=int,
              help="HNSW build breadth (default: the corpus's own, else 100); a new value rebuilds the graph.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def index_cmd(folder: str, corpus: str | None, index_dir: str | None, embedder_name: str | None,
              embedder_options: tuple[str, ...], batch_size: int, workers: int | None,
              extensions: tuple[str, ...], max_pixels: int | None, strict: bool, full_decode: bool,
              hnsw_m: int | None, ef_construction: int | None, quiet: bool, as_json: bool) -> None:
    """Index the images under FOLDER into a corpus; re-running embeds only new or changed files."""
    from .images import MAX_PIXELS
    from .index import ingest
    from .index.progress import RichProgress

    options = _parse_options(embedder_options)
    if options and not embedder_name:
        raise ConfigError("--embedder-option needs --embedder", hint="e.g. --embedder clip --embedder-option model=ViT-B-32")
    spec = {"use": embedder_name, **options} if embedder_name else None
    show = not (quiet or as_json)
    report = ingest(folder, corpus=corpus, index_dir=index_dir, embedder=spec, batch_size=batch_size,
                    workers=workers, extensions=extensions or None, max_pixels=max_pixels or MAX_PIXELS,
                    progress=RichProgress() if show else None, draft_jpeg=not full_decode,
                    graph_progress=RichProgress("HNSW graph", unit="vec") if show else None,
                    hnsw_m=hnsw_m, ef_construction=ef_construction)
    err = _console(stderr=True)
    for problem in report.bad + report.skipped + report.warnings:
        err.print(f"{problem.kind}: {problem.path}: {problem.reason}", markup=False)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    err.print(report.summary(), markup=False)
    if strict and report.bad:
        from .index import StrictIngestError

        raise StrictIngestError(f"{len(report.bad)} file(s) could not be indexed (--strict)",
                                hint=f"see {report.report_path}")


@click.command("search")
@click.argument("text", required=False)
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False), help="Search by this image instead.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1), help="Hits per query.")
@click.option("--corpus", help="Corpus name.")
@click.option("--index-dir", type=click.Path(file_okay=False), help="Corpus folder, instead of a name.")
@click.option("--profile", help="Use the retriever of this profile (name or YAML path).")
@click.option("--min-similarity", type=float, help="Drop hits below this cosine similarity.")
@click.option("--ef", type=click.IntRange(1), help="HNSW search breadth (default max(150, 2 × hits fetched)).")
@click.option("--sheet", type=click.Path(dir_okay=False), help="Write a contact sheet of the hits (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search_cmd(text: str | None, image_path: str | None, k: int, corpus: str | None, index_dir: str | None,
               profile: str | None, min_similarity: float | None, ef: int | None, sheet: str | None,
               as_json: bool) -> None:
    """Search a corpus by TEXT (or --image) and print the top hits."""
    from .roles import Retriever
    from .specs import ComponentSpec
    from .types import ImageQuery

    if not text and not image_path:
        raise ConfigError("nothing to search for", hint="give a TEXT argument or --image PATH")
    if profile and (corpus or index_dir):
        raise ConfigError("--profile and --corpus/--index-dir exclude each other")
    recorded = None  # how the corpus's last index run resolved 'index' and its embedder's name
    if profile:
        from .profiles import load_profile

        spec = load_profile(profile).retriever
        if spec is None:
            raise ConfigError(f"profile '{profile}' has no retriever", hint="use --corpus NAME")
        overrides = {key: v for key, v in (("min_similarity", min_similarity), ("ef", ef)) if v is not None}
        if overrides:
            spec = ComponentSpec(**{**spec.model_dump(), **overrides})
    elif corpus or index_dir:
        opts = {"corpus": corpus, "index_dir": index_dir, "min_similarity": min_similarity, "ef": ef}
        spec = ComponentSpec(use="index", **{key: v for key, v in opts.items() if v is not None})
        from .index.corpus import resolved_components

        recorded = resolved_components(corpus, index_dir)
    else:
        raise CorpusError("no corpus given", hint="pass --corpus NAME, --index-dir PATH or --profile NAME")
    retriever = spec.build("retriever", recorded=recorded)
    assert isinstance(retriever, Retriever)
    if image_path and not retriever.supports_image_search:
        raise ConfigError(f"retriever '{spec.use}' cannot search by image",
                          hint="search by TEXT, or use a retriever that can (--corpus NAME: the index)")
    corpus_log = logging.getLogger("imagerag_sdk.index.corpus")
    level = corpus_log.level
    corpus_log.setLevel(logging.ERROR)  # its warning (no saved graph yet) is printed once, below
    try:
        if image_path:
            hits = retriever.search_images([ImageQuery.open(image_path)], k)[0]
        else:
            assert text  # one of TEXT and --image is given (checked above)
            hits = retriever.search([text], k)[0]
    finally:
        corpus_log.setLevel(level)
    note = getattr(retriever, "note", None)
    if note:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"{len(hits)} hit(s) for {text or image_path!r}")
        for col in ("rank", "score", "path", "caption"):
            table.add_column(col, overflow="fold")
        for i, h in enumerate(hits):
            table.add_row(str(i + 1), f"{h.score:.4f}", h.path, h.caption)
        _console(stderr=False).print(table)
    if sheet:
        from .index.sheet import contact_sheet

        click.echo(f"contact sheet: {contact_sheet(hits, sheet)}", err=True)


def add_commands(group: click.Group) -> None:
    """Attach the corpus commands to the root group."""
    group.add_command(index_cmd)
    group.add_command(search_cmd)
