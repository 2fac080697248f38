"""Figures of the hidden-cost report (``vpcost_utils.report``), beyond the paper's own figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._common import _colors, _grid, _legend, _no_data, _ordered_shots, dataset_title


def gap_figure(gaps: pd.DataFrame, datasets: Sequence[str], ylabel: str, *, after: pd.DataFrame | None = None,
               ncols: int = 4) -> Figure:
    """Paired gap vs N-shot with its 95 % interval, one panel per dataset, one series per compressed model.

    ``gaps`` is ``intervals.paired_gaps``-shaped (model, dataset, shots, gap, gap_low, gap_high). With
    ``after`` (the same gap after temperature scaling) each model gets a dashed second series.
    """
    fig, axes = _grid(len(datasets), ncols)
    models = list(dict.fromkeys(gaps["model"])) if not gaps.empty else []
    colors = _colors(len(models))
    for ax, dataset in zip(axes, datasets, strict=False):
        part = gaps[gaps["dataset"] == dataset]
        shots = _ordered_shots(part["shots"]) if not part.empty else []
        if part.empty:
            _no_data(ax)
        series = [(part, "", "-", "o")]
        if after is not None:
            series.append((after[after["dataset"] == dataset], ", temperature-scaled", "--", "s"))
        for table, suffix, linestyle, marker in series:
            for k, (model, color) in enumerate(zip(models, colors, strict=False)):
                rows = table[table["model"] == model]
                rows = rows[rows["shots"].isin(shots)]
                if rows.empty:
                    continue
                # a small sideways offset per model keeps overlapping intervals readable
                x = np.array([shots.index(s) for s in rows["shots"]], float) + 0.06 * (k - (len(models) - 1) / 2)
                gap = rows["gap"].to_numpy(float)
                err = np.vstack([gap - rows["gap_low"].to_numpy(float), rows["gap_high"].to_numpy(float) - gap])
                ax.errorbar(x, gap, yerr=np.nan_to_num(err), color=color, linestyle=linestyle, marker=marker,
                            markersize=4, capsize=3, label=f"{model}{suffix}")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(shots)), shots)
        ax.set_xlabel("N-shots (images per class)")
        ax.set_ylabel(ylabel)
        ax.set_title(dataset_title(dataset))
        ax.grid(alpha=0.3)
    _legend(fig, axes, ncols=2)
    return fig
