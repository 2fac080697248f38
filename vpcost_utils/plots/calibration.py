"""Calibration figures: statistics vs compression (Figs 7-13), reliability diagrams, upstream accuracy (Fig. 14)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import SpecError, UnknownNameError
from ._common import (
    _METHOD_STYLE,
    FAMILY_TITLES,
    METHOD_LABELS,
    METRIC_LABELS,
    Family,
    _as_list,
    _colors,
    _draw_series,
    _grid,
    _legend,
    _no_data,
    _prepare,
    compression_level,
    dataset_title,
    model_label,
    seed_stats,
    shot_label,
)

# --- statistics vs compression level (Figs 7-13) ---------------------------------------------------------------

def _x_value(model: str, x: str, measured: Mapping[str, float]) -> float | None:
    level = compression_level(model)
    if x == "bits":
        return level["bits"]
    value = level[x]
    if value is None and model in measured:  # gmp: the name does not state it, the record does
        value = 100 * measured[model] if x == "sparsity" else 100 * (1 - measured[model])
    return value


def _compression_panel(ax: Any, data: pd.DataFrame, families: Mapping[str, Family], methods: Mapping[str, list[str]],
                       metric: str, x: str, bit_positions: list[int], spread: str, measured: Mapping[str, float]
                       ) -> None:
    colors = _colors(len(families))
    drawn = False
    for color, (family, (dense, compressed)) in zip(colors, families.items(), strict=False):
        for method in methods[family]:
            sub = data[data["method"] == method]
            stats = seed_stats(sub[sub["model"].isin([dense, *compressed])], ["model"], metric)
            if stats.empty:
                continue
            xs = [_x_value(m, x, measured) for m in stats["model"]]
            if x == "bits":
                xs = [bit_positions.index(b) for b in xs]
            # From the dense end to the most compressed one, whichever way the axis runs.
            stats = stats.assign(_x=xs).dropna(subset=["_x"]).sort_values("_x", ascending=x != "remaining")
            linestyle, marker = _METHOD_STYLE.get(method, ("-", "o"))
            name = FAMILY_TITLES.get(family, family)
            label = name if len(methods[family]) == 1 else f"{name}, {METHOD_LABELS.get(method, method)}"
            _draw_series(ax, stats["_x"].tolist(), stats, label=label, color=color, linestyle=linestyle,
                         marker=marker, spread=spread)
            drawn = True
    if x == "bits":
        ax.set_xticks(range(len(bit_positions)), [str(b) for b in bit_positions])
        ax.set_xlabel("bits (weights and activations)")
    elif x == "remaining":
        ax.set_xscale("log")
        ax.invert_xaxis()  # dense (100 %) on the left, sparsest on the right, as in the paper
        ax.set_xlabel("S (% weights remaining)")
    else:
        ax.set_xlabel("sparsity (%)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if not drawn:
        _no_data(ax)


def stat_vs_compression(df: pd.DataFrame, families: Mapping[str, Family], datasets: str | Sequence[str],
                        metric: str | Sequence[str] = "ece", *, x: str = "sparsity",
                        methods: str | Sequence[str] | Mapping[str, Sequence[str]] = ("ilm",),
                        n_shots: int | None = None, spread: str = "ci95", ncols: int = 4, title: str | None = None
                        ) -> Figure:
    """A calibration statistic vs compression level, one panel per dataset, one line per (family, method).

    ``x``: ``"sparsity"`` (% zeros), ``"remaining"`` (% kept, log axis, dense on the left) or ``"bits"``
    (categorical, 32 on the left). ``methods`` may map a family to its own methods (Fig. 7: LT with all
    three, AC/DC and RigL with ILM only). Several metrics give one row each, e.g. the correct ``"ece"``
    above the paper-compatible ``"ece_paper_logit"``. Only runs at ``n_shots`` (None = full data) count.
    """
    if x not in ("sparsity", "remaining", "bits"):
        raise UnknownNameError("x axis", x, ("sparsity", "remaining", "bits"))
    datasets, metrics = _as_list(datasets), _as_list(metric)
    per_family = ({f: _as_list(methods.get(f, ())) for f in families} if isinstance(methods, Mapping)
                  else {f: _as_list(methods) for f in families})
    data = _prepare(df, metrics)
    data = data[data["dataset"].isin(datasets) & (data["shot"] == shot_label(n_shots))]
    measured = {}
    if "sparsity" in data.columns:
        measured = pd.to_numeric(data["sparsity"], errors="coerce").groupby(data["model"]).mean().dropna().to_dict()
    models = {m for dense, comp in families.values() for m in (dense, *comp)}
    bit_positions = sorted({compression_level(m)["bits"] for m in models}, reverse=True)
    if len(metrics) == 1:
        fig, axes = _grid(len(datasets), ncols)
        panels = [(ax, metrics[0], d) for ax, d in zip(axes, datasets, strict=False)]
    else:
        fig, axes = _grid(len(metrics) * len(datasets), len(datasets), nrows=len(metrics))
        panels = [(axes[i * len(datasets) + j], m, d) for i, m in enumerate(metrics) for j, d in enumerate(datasets)]
    for ax, m, dataset in panels:
        _compression_panel(ax, data[data["dataset"] == dataset], families, per_family, m, x, bit_positions, spread,
                           measured)
        ax.set_title(dataset_title(dataset))
    _legend(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


def ece_vs_compression(df: pd.DataFrame, families: Mapping[str, Family], datasets: str | Sequence[str], *,
                       x: str = "sparsity", metric: str | Sequence[str] = "ece", **kwargs: Any) -> Figure:
    """ECE vs sparsity (Fig. 7) or vs bits (Figs 8, 9). ``metric=("ece", "ece_paper_logit")`` adds the paper's."""
    return stat_vs_compression(df, families, datasets, metric, x=x, **kwargs)


def confidence_vs_compression(df: pd.DataFrame, families: Mapping[str, Family], datasets: str | Sequence[str], *,
                              x: str = "bits", metric: str | Sequence[str] = "conf_correct", **kwargs: Any) -> Figure:
    """Mean confidence of the true class over correctly classified samples vs bits (Fig. 10) or sparsity (12)."""
    return stat_vs_compression(df, families, datasets, metric, x=x, **kwargs)


def kl_vs_compression(df: pd.DataFrame, families: Mapping[str, Family], datasets: str | Sequence[str], *,
                      x: str = "bits", metric: str | Sequence[str] = ("kl_wrong_p_uniform", "kl_wrong_paper"),
                      **kwargs: Any) -> Figure:
    """KL between misclassified samples' softmax and uniform vs bits (Fig. 11) or sparsity (Fig. 13).

    By default two rows: the proper KL(p || U) and, below it, the paper's statistic KL(U || p) / K.
    """
    return stat_vs_compression(df, families, datasets, metric, x=x, **kwargs)


# --- reliability and upstream accuracy (Fig. 14) ---------------------------------------------------------------

def _record_label(record: Mapping[str, Any]) -> str:
    spec = record.get("spec", {})
    return (f"{model_label(spec.get('model', '?'), True)}\n{dataset_title(spec.get('dataset', '?'))}, "
            f"{METHOD_LABELS.get(spec.get('method'), spec.get('method'))}, N={shot_label(spec.get('n_shots'))}")


def reliability_diagram(records: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                        labels: Sequence[str] | None = None, ncols: int = 4) -> Figure:
    """Per-bin accuracy vs confidence of the top-label prediction, one panel per run record."""
    records = [records] if isinstance(records, Mapping) else list(records)
    fig, axes = _grid(len(records), ncols, panel=(3.0, 3.0))
    for i, (ax, rec) in enumerate(zip(axes, records, strict=False)):
        rel = rec["metrics"]["reliability"]
        upper = np.asarray(rel["bin_upper"], float)
        width = 1 / len(upper)
        centre = upper - width / 2
        count = np.asarray(rel["count"], float)
        acc, conf = np.asarray(rel["accuracy"], float), np.asarray(rel["confidence"], float)
        used = count > 0
        ax.bar(centre[used], acc[used], width, color="tab:blue", edgecolor="white", label="accuracy")
        ax.bar(centre[used], conf[used] - acc[used], width, bottom=acc[used], color="tab:red", alpha=0.35,
               label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
        label = labels[i] if labels else _record_label(rec)
        ax.set_title(f"{label}\nECE {100 * rec['metrics']['ece']:.1f}%", fontsize="small")
    _legend(fig, axes, ncols=3)
    return fig


def upstream_accuracy(points: Sequence[Mapping[str, Any]], *, title: str = "Upstream ImageNet-1k top-1") -> Figure:
    """Fig. 14: top-1 vs % weights remaining; ``points`` = dicts {name, remaining, top1, kind: measured|published}."""
    for p in points:
        missing = {"name", "remaining", "top1", "kind"} - set(p)
        if missing or p["kind"] not in ("measured", "published"):
            raise SpecError(f"upstream point {dict(p)!r} needs name, remaining, top1 and kind 'measured' or "
                            f"'published' (missing {sorted(missing)})")
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    styles = {"published": ("s", "--", "tab:gray"), "measured": ("o", "-", "tab:blue")}
    for kind, (marker, linestyle, color) in styles.items():
        pts = sorted((p for p in points if p["kind"] == kind), key=lambda p: -p["remaining"])
        if pts:
            ax.plot([p["remaining"] for p in pts], [p["top1"] for p in pts], marker=marker, linestyle=linestyle,
                    color=color, label=kind)
    ax.set_xscale("log")
    ticks = sorted({float(p["remaining"]) for p in points}, reverse=True)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], rotation=45)
    ax.minorticks_off()
    ax.invert_xaxis()  # dense on the left, sparsest on the right
    ax.set(xlabel="S (% weights remaining)", ylabel="top-1 accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    if points:
        ax.legend(frameon=False)
    return fig
