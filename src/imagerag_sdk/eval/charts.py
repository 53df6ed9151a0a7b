"""The bar chart of the eval pages: one panel per metric, a pair of bars per system (without and
with retrieval: the initial and the final image), standard errors as error bars. Drawn with
matplotlib's Agg canvas (no pyplot, no global backend change), imported only when a chart is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import MissingDependencyError
from .pages import finite

KINDS = (("initial", "without (initial)", "#a9bdd8"), ("final", "with (final)", "#2f6fde"))
INSTALL = "pip install 'imagerag-sdk[eval]'"
WIDTH = 10.5
"""Widest chart, in inches at 110 dpi (about the page's width): more panels wrap to a new row."""


@dataclass
class Bars:
    """One system's numbers: ``values[metric][kind] = (mean, se)``, kind ``initial`` or ``final``."""
    system: str
    values: dict[str, dict[str, tuple[float | None, float | None]]]


def bar_chart(metrics: Sequence[str], systems: Sequence[Bars]) -> bytes:
    """The chart as PNG bytes; :class:`MissingDependencyError` when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"the chart needs matplotlib ({exc})", hint=INSTALL) from None

    panels = max(1, len(metrics))
    per_panel = max(2.6, 0.9 * len(systems) + 1.2)
    cols = max(1, min(panels, int(WIDTH // per_panel)))  # wrap panels rather than shrink the text
    rows = -(-panels // cols)
    fig = Figure(figsize=(max(per_panel * cols, 4.0), 3.3 * rows + 0.3), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for line in grid for ax in line]
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    width = 0.38
    for ax, metric in zip(axes, metrics, strict=False):
        for k, (kind, label, colour) in enumerate(KINDS):
            xs, heights, errors = [], [], []
            for i, bars in enumerate(systems):
                mean, se = bars.values.get(metric, {}).get(kind, (None, None))
                height = finite(mean)
                if height is None:
                    continue
                xs.append(i + (k - 0.5) * width)
                heights.append(height)
                errors.append(finite(se) or 0.0)
            ax.bar(xs, heights, width, yerr=errors, capsize=3, color=colour, label=label,
                   error_kw={"elinewidth": 1, "ecolor": "#1f2328"})
        ax.set_title(metric, fontsize=11)
        ax.set_xticks(range(len(systems)), [b.system for b in systems], fontsize=9,
                      rotation=20 if len(systems) > 3 else 0, ha="right" if len(systems) > 3 else "center")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", color="#d8dde3", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=len(KINDS), fontsize=9, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
