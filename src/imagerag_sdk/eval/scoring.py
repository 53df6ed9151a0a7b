"""Scorers of an evaluation: built from specs through the registry, checked against the set, run in
batches with one failing unit isolated from the rest of its batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ImageRAGError
from ..outputs import check_scores
from ..redact import mask_spec
from .systems import ScorerSpec, config_hash, parse_scorer


@dataclass
class Loaded:
    """A scorer of the evaluation and its component."""

    spec: ScorerSpec
    component: Any  # a roles.Scorer


def build_scorers(texts: Sequence[str | dict[str, Any]]) -> list[Loaded]:
    """Each ``--scorer`` (a name or a ``{use: …}`` mapping) as a constructed (not loaded) scorer;
    the metric name is its ``use``, ``-2``, ``-3`` … for repeats. Unknown names and invalid
    options are :class:`ConfigError` s."""
    from pydantic import ValidationError

    from ..plugins import get_registry
    from ..profiles import format_problem, resolve_env

    registry = get_registry()
    out: list[Loaded] = []
    names: dict[str, int] = {}
    for text in texts:
        spec = parse_scorer(text) if isinstance(text, str) else dict(text)
        use = str(spec.get("use", ""))
        options = resolve_env({k: v for k, v in spec.items() if k != "use"}, use, "--scorer", set())
        reg = registry.get("scorer", use)
        try:
            reg.cls.Options.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(format_problem("--scorer", exc.errors()[0], use),
                              hint=f"'imagerag plugins' lists the options of scorer '{use}'") from None
        component = registry.build("scorer", use, options)
        names[use] = names.get(use, 0) + 1
        name = use if names[use] == 1 else f"{use}-{names[use]}"
        described = component.describe()
        identity = {"spec": mask_spec(spec), "class": described.get("class"),
                    "version": described.get("version"), "options": described.get("options"),
                    "identity": getattr(component, "identity", None)}
        out.append(Loaded(ScorerSpec(name, spec, config_hash(identity)), component))
    return out


def check_real_images(scorers: Sequence[Loaded], missing: Sequence[str], set_path: str) -> None:
    """Refuse a set whose items lack real images when a scorer needs them."""
    needy = [s.spec.name for s in scorers if getattr(type(s.component), "needs_real_images", False)]
    if needy and missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(f"scorer '{needy[0]}' compares against real images of each concept, and "
                          f"{len(missing)} item(s) of {set_path} have none ({shown})",
                          hint="give each item real_images in the set file ('imagerag eval build-set' fills them "
                               "from the dataset's class folders) or leave that scorer out")


def score_units(scorer: Loaded, units: Sequence[Any], make_items: Callable[[Any], list[Any]],
                on_done: Callable[[Any, list[Any]], None], on_error: Callable[[Any, str], None]) -> None:
    """Score ``units`` in one batch (each gives several items through ``make_items``; a unit whose
    items cannot be made, an unreadable image, is reported alone and left out of the batch); when
    the batch fails, each unit alone, so one bad unit is reported (``on_error``) and the rest scored
    (``on_done(unit, scores)``). What the scorer returns is checked by
    :func:`~imagerag_sdk.outputs.check_scores` (a failed check fails the unit like an exception)."""
    ready: list[tuple[Any, list[Any]]] = []
    for unit in units:
        try:
            ready.append((unit, make_items(unit)))
        except Exception as exc:  # this unit's images: record it, score the rest together
            on_error(unit, _failed(scorer, exc))
    batches = [ready] if ready else []
    while batches:
        batch = batches.pop(0)
        try:
            flat = [item for _, items in batch for item in items]
            scores = check_scores(scorer.component.score_detailed(flat), scorer.component, len(flat),
                                  method="score_detailed")
        except Exception as exc:  # a scorer's failure on some image: isolate it, then record it
            if len(batch) > 1:
                batches[:0] = [[one] for one in batch]
                continue
            on_error(batch[0][0], _failed(scorer, exc))
            continue
        at = 0
        for unit, items in batch:
            on_done(unit, scores[at:at + len(items)])
            at += len(items)


def _failed(scorer: Loaded, exc: Exception) -> str:
    what = str(exc) if isinstance(exc, ImageRAGError) else f"{type(exc).__name__}: {exc}"
    return one_line(f"scorer '{scorer.spec.name}' failed: {what}")


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."
