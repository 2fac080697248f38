"""Accuracy figures: accuracy vs N-shot (Figs 2-6, 18, 21-25) and Delta heat maps (Figs 15-17)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ._common import (
    _METHOD_STYLE,
    METHOD_LABELS,
    METRIC_LABELS,
    _as_list,
    _colors,
    _draw_series,
    _grid,
    _legend,
    _no_data,
    _ordered_shots,
    _prepare,
    compression_amount,
    compression_kind,
    dataset_title,
    model_label,
    seed_stats,
)

# --- accuracy vs N-shot (Figs 2-6, 18, 21-25; Figs 15-16 left) -------------------------------------------------

def _series_label(model: str, method: str, models: Sequence[str], methods: Sequence[str],
                  labels: Mapping[str, str] | None) -> str:
    with_arch = len({m.rpartition("/")[0] for m in models}) > 1
    name = (labels or {}).get(model) or model_label(model, with_arch)
    if len(methods) == 1:
        return name
    return METHOD_LABELS.get(method, method) if len(models) == 1 else f"{name}, {METHOD_LABELS.get(method, method)}"


def _accuracy_panel(ax: Any, stats: pd.DataFrame, models: Sequence[str], methods: Sequence[str], shots: list[str],
                    spread: str, metric: str, labels: Mapping[str, str] | None) -> None:
    colors = _colors(len(models), models)
    drawn = False
    for model, color in zip(models, colors, strict=False):
        for method in methods:
            s = stats[(stats["model"] == model) & (stats["method"] == method)]
            if s.empty:
                continue
            s = s.assign(_x=[shots.index(v) for v in s["shot"]]).sort_values("_x")
            linestyle, marker = _METHOD_STYLE.get(method, ("-", "o"))
            _draw_series(ax, s["_x"].tolist(), s, label=_series_label(model, method, models, methods, labels),
                         color=color, linestyle=linestyle, marker=marker, spread=spread)
            drawn = True
    ax.set_xticks(range(len(shots)), shots)
    ax.set_xlim(-0.3, max(len(shots) - 1, 0) + 0.3)
    ax.set_xlabel("N-shots (images per class)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if not drawn:
        _no_data(ax)


def accuracy_vs_shots(df: pd.DataFrame, models: Sequence[str], datasets: str | Sequence[str],
                      methods: str | Sequence[str] = ("ilm",), *, metric: str = "acc", spread: str = "ci95",
                      ncols: int = 4, labels: Mapping[str, str] | None = None, title: str | None = None) -> Figure:
    """Test accuracy vs N-shot, one panel per dataset, one line per (model, method) (Figs 2-6, 18, 21-25).

    Colour tells the model (dense in black), line style the VP method. The N-shot axis holds the
    budgets present in the runs, in the paper's order. ``labels`` overrides legend names per model.
    """
    datasets, methods = _as_list(datasets), _as_list(methods)
    data = _prepare(df, [metric])
    data = data[data["model"].isin(models) & data["dataset"].isin(datasets) & data["method"].isin(methods)]
    stats = seed_stats(data, ["dataset", "model", "method", "shot"], metric)
    shots = _ordered_shots(data["shot"])
    fig, axes = _grid(len(datasets), ncols)
    for ax, dataset in zip(axes, datasets, strict=False):
        _accuracy_panel(ax, stats[stats["dataset"] == dataset], models, methods, shots, spread, metric, labels)
        ax.set_title(dataset_title(dataset))
    _legend(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


# --- Delta heat maps (Figs 15-17) ------------------------------------------------------------------------------

def delta_table(df: pd.DataFrame, dense: str, compressed: Sequence[str], dataset: str, method: str = "ilm", *,
                metric: str = "acc", include_dense: bool = False) -> pd.DataFrame:
    """Delta = mean over seeds of the dense accuracy - mean over seeds of the compressed one.

    Rows are the N-shot labels present (paper order), columns the model names (dense first when
    ``include_dense``, where Delta is 0 by definition). With the same seeds on both sides this is the
    mean of the per-seed differences; with different seeds it still compares like with like.
    """
    data = _prepare(df, [metric])
    data = data[(data["dataset"] == dataset) & (data["method"] == method)]
    means = seed_stats(data, ["model", "shot"], metric).pivot(index="shot", columns="model", values="mean")
    models = [dense, *compressed] if include_dense else list(compressed)
    shots = _ordered_shots(data["shot"])
    means = means.reindex(index=shots, columns=[dense, *compressed])
    table = pd.DataFrame({m: means[dense] - means[m] for m in models}, index=shots)
    table.index.name, table.columns.name = "n_shots", "model"
    return table


def _heat_panel(ax: Any, table: pd.DataFrame, norm: Normalize, fmt: str) -> Any:
    from matplotlib import colormaps

    values = table.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormaps["RdBu_r"], norm=norm, aspect="auto")
    ax.set_facecolor("0.9")  # cells with no runs
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize="x-small",
                    color="white" if abs(v) > 0.6 * norm.vmax else "black")
    ax.set_xticks(range(table.shape[1]), [_level_tick(m) for m in table.columns], rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), list(table.index))
    ax.set_ylabel("N-shots")
    lt = any(compression_kind(m) == "lt" for m in table.columns)
    ax.set_xlabel("S (% weights remaining)" if lt else "compression level")
    return image


def _level_tick(name: str) -> str:
    label = model_label(name)
    return label.replace("LT S=", "") if label.startswith("LT S=") else label


def _symmetric_norm(tables: Sequence[pd.DataFrame], vlim: float | None) -> Normalize:
    if vlim is None:
        values = np.concatenate([t.to_numpy(float).ravel() for t in tables]) if tables else np.array([])
        finite = np.abs(values[np.isfinite(values)])
        vlim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return Normalize(vmin=-vlim, vmax=vlim)  # centred at 0: red = dense better, blue = compressed better


def delta_heatmap(df: pd.DataFrame, dense: str, compressed: Sequence[str], datasets: str | Sequence[str],
                  method: str = "ilm", *, metric: str = "acc", include_dense: bool = True, vlim: float | None = None,
                  fmt: str = ".1f", ncols: int = 4) -> Figure:
    """Delta heat maps (compression level x N-shot), one panel per dataset (Figs 15-17, right).

    Cells are annotated with Delta in accuracy points; the diverging colour scale is centred at 0 and
    shared by all panels (red: the dense model is better). ``vlim`` fixes its half-range.
    """
    datasets = _as_list(datasets)
    tables = [delta_table(df, dense, compressed, d, method, metric=metric, include_dense=include_dense)
              for d in datasets]
    norm = _symmetric_norm(tables, vlim)
    fig, axes = _grid(len(datasets), ncols, panel=(0.45 * (len(compressed) + 1) + 1.2, 2.9))
    image = None
    for ax, dataset, table in zip(axes, datasets, tables, strict=False):
        image = _heat_panel(ax, table, norm, fmt)
        ax.set_title(f"{dataset_title(dataset)}, {METHOD_LABELS.get(method, method)}")
    fig.colorbar(image, ax=axes, label="Δ = dense − compressed (points)", shrink=0.8)
    return fig


def transfer_gap(df: pd.DataFrame, dense: str, compressed: Sequence[str], datasets: str | Sequence[str], *,
                 sparsest: str | None = None, curve_methods: Sequence[str] = ("ilm", "flm", "rlm"),
                 heat_methods: Sequence[str] = ("ilm", "flm"), spread: str = "ci95", vlim: float | None = None
                 ) -> Figure:
    """Figs 15-16: per dataset a row of (accuracy vs N-shot, dense vs the sparsest level) + one Delta map per method."""
    datasets = _as_list(datasets)
    sparsest = sparsest or max(compressed, key=compression_amount)
    data = _prepare(df, ["acc"])
    tables = {(d, m): delta_table(df, dense, compressed, d, m, include_dense=True) for d in datasets
              for m in heat_methods}
    norm = _symmetric_norm(list(tables.values()), vlim)
    fig = Figure(figsize=(3.6 + 4.2 * len(heat_methods), 2.9 * len(datasets) + 0.6), layout="constrained")
    axes = fig.subplots(len(datasets), 1 + len(heat_methods), squeeze=False)
    curve = data[data["model"].isin([dense, sparsest]) & data["method"].isin(curve_methods)]
    stats = seed_stats(curve, ["dataset", "model", "method", "shot"], "acc")
    shots = _ordered_shots(curve["shot"])
    image = None
    for row, dataset in zip(axes, datasets, strict=False):
        _accuracy_panel(row[0], stats[stats["dataset"] == dataset], [dense, sparsest], curve_methods, shots, spread,
                        "acc", None)
        row[0].set_title(dataset_title(dataset))
        for ax, method in zip(row[1:], heat_methods, strict=False):
            image = _heat_panel(ax, tables[(dataset, method)], norm, ".1f")
            ax.set_title(f"Δ, {METHOD_LABELS.get(method, method)}")
    _legend(fig, axes[:, 0], ncols=3)
    if image is not None:
        fig.colorbar(image, ax=axes[:, 1:].ravel().tolist(), label="Δ = dense − compressed (points)", shrink=0.6)
    return fig
