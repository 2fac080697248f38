"""One function per figure of the paper, drawn from the result table or the run records.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state, so it
is safe under Agg and papermill and leaks nothing across cells), never trains, and reads nothing
but its arguments. Conventions shared by all figures:

- Seeds: the line is the mean over seeds; the band is their min-max range (``spread="minmax"``) or
  mean +- one standard deviation (``spread="std"``). A band is drawn only where 2+ seeds exist.
- N-shot axes are categorical in the paper's order 1, 2, 5, 10, 20, 50, 100, full (``None``).
- Accuracies are in percent; ECE, confidences and KL values are as the records store them.
- A model's compression level is parsed from its registry name by ``compression_level``.
- Correct statistics are the default; the paper-compatible ones (``ece_paper_logit``,
  ``kl_wrong_paper``) are drawn when asked for, in their own row, named as such.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .config import SHOTS_GRID
from .errors import SpecError, UnknownNameError

Family = tuple[str, Sequence[str]]  # (dense model, compressed models), as profiles.SPARSE_FAMILIES holds them

DATASET_TITLES = {
    "cifar10": "CIFAR-10", "svhn": "SVHN", "gtsrb": "GTSRB", "dtd": "DTD", "flowers102": "Flowers102",
    "oxford_pets": "OxfordPets", "eurosat": "EuroSAT", "caltech101": "Caltech101", "yelp_polarity": "Yelp",
    "imdb": "IMDB", "ag_news": "AG News", "dbpedia_14": "DBPedia", "splice": "DNA Splice",
    "synth_shapes": "synth_shapes (generated)", "digits": "digits (sklearn)",
}
METHOD_LABELS = {"rlm": "RLM-VP", "flm": "FLM-VP", "ilm": "ILM-VP", "vp": "VP", "ilm-vp": "ILM-VP",
                 "max": "max", "mean": "mean"}
ARCH_TITLES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50", "deit_tiny": "DeiT-T",
               "swin_tiny": "Swin-T", "clip_vit_l14_336": "CLIP ViT-L/14@336", "smallcnn": "SmallCNN",
               "tinyclip": "TinyCLIP"}
#: y-axis names; the paper-compatible statistics say so, so a reader never mistakes one for the other.
METRIC_LABELS = {
    "acc": "Test accuracy (%)",
    "best_acc": "Best test accuracy (%) [test-set selection]",
    "ece": "ECE (softmax, 15 bins)",
    "ece_paper_logit": "Paper-compatible 'ECE'\n(logits, per batch, / N)",
    "nll": "Test NLL",
    "conf_correct": "Mean confidence of true class\n(correct samples)",
    "conf_wrong_true": "Mean confidence of true class\n(misclassified samples)",
    "kl_wrong_p_uniform": "KL(p || U)\n(misclassified)",
    "kl_wrong_paper": "Paper-compatible KL(U || p)/K\n(misclassified)",
    "kl_correct_paper": "Paper-compatible KL(U || p)/K, correct",
}
FAMILY_TITLES = {"lt": "LT (IMP)", "acdc": "AC/DC", "rigl": "RigL", "gmp-r18": "GMP ResNet-18",
                 "gmp-r34": "GMP ResNet-34", "deit_tiny": "DeiT-T", "swin_tiny": "Swin-T", "smallcnn": "SmallCNN"}
_DENSE_TAGS = ("dense", "dense-v1", "fp32", "timm", "openai", "upop-coco", "base")
_SPARSE_KINDS = {"acdc": "AC/DC", "rigl": "RigL", "prune": "Pruned", "gmp": "GMP"}
_TAG_FORMS = (*_DENSE_TAGS, "lt-<remaining %>", "acdc-<sparsity %>", "rigl-<sparsity %>", "prune-<sparsity %>",
              "gmp", "w<bits>a<bits>", "upop-<factor>x")
_METHOD_STYLE = {"ilm": ("-", "o"), "flm": ("--", "s"), "rlm": (":", "^"), "vp": ("--", "s"), "ilm-vp": ("-", "o"),
                 "max": ("-", "o"), "mean": ("--", "s")}
_PANEL = (3.4, 2.7)  # inches per panel: readable at notebook width with 4 columns


# --- names, levels, shots --------------------------------------------------------------------------------------

def compression_level(model_name: str) -> dict[str, Any]:
    """The compression a registry name states: ``kind``, ``sparsity`` and ``remaining`` (% of weights), ``bits``.

    ``lt-11.571`` keeps 11.571 % of the weights; ``acdc-90``, ``rigl-90``, ``prune-90`` are 90 % sparse;
    ``w3a3`` is 3-bit; ``upop-2x`` keeps half the parameters; dense / fp32 are 0 % sparse at 32 bits.
    ``gmp`` does not state its level (80-90 % layer-wise): sparsity and remaining are None.
    """
    tag = model_name.rsplit("/", 1)[-1].lower()
    if tag in _DENSE_TAGS:
        return {"kind": "dense", "sparsity": 0.0, "remaining": 100.0, "bits": 32}
    if tag == "gmp":
        return {"kind": "gmp", "sparsity": None, "remaining": None, "bits": 32}
    if m := re.fullmatch(r"lt-(\d+(?:\.\d+)?)", tag):
        remaining = float(m.group(1))
        return {"kind": "lt", "sparsity": round(100 - remaining, 6), "remaining": remaining, "bits": 32}
    if m := re.fullmatch(r"(acdc|rigl|prune|gmp)-(\d+(?:\.\d+)?)", tag):
        sparsity = float(m.group(2))
        return {"kind": m.group(1), "sparsity": sparsity, "remaining": round(100 - sparsity, 6), "bits": 32}
    if m := re.fullmatch(r"w(\d+)a(\d+)", tag):
        return {"kind": "quant", "sparsity": 0.0, "remaining": 100.0, "bits": int(m.group(1))}
    if m := re.fullmatch(r"upop-(\d+(?:\.\d+)?)x", tag):
        remaining = round(100 / float(m.group(1)), 6)
        return {"kind": "upop", "sparsity": round(100 - remaining, 6), "remaining": remaining, "bits": 32}
    raise UnknownNameError("compression tag", tag, _TAG_FORMS)


def compression_amount(model_name: str) -> float:
    """A sort key that grows with compression within one family (sparsity %, or 32 / bits for quantization)."""
    level = compression_level(model_name)
    if level["kind"] == "quant":
        return 32 / level["bits"]
    return level["sparsity"] if level["sparsity"] is not None else 50.0  # gmp: its only level


def compression_kind(name: str) -> str | None:
    """The compression kind of a registry name, or None when the name states none we know."""
    try:
        return compression_level(name)["kind"]
    except UnknownNameError:
        return None


def model_label(name: str, with_arch: bool = False) -> str:
    """A short legend label for a registry name, e.g. ``LT S=11.571``, ``AC/DC 90%``, ``3-bit``, ``Dense``."""
    arch, _, tag = name.rpartition("/")
    try:
        level = compression_level(name)
    except UnknownNameError:
        return name
    kind = level["kind"]
    if kind == "dense":
        text = "32-bit (FP)" if tag == "fp32" else "Dense"
    elif kind == "lt":
        text = f"LT S={tag.split('-', 1)[1]}"
    elif kind == "gmp" and level["sparsity"] is None:
        text = "GMP"
    elif kind in _SPARSE_KINDS:
        text = f"{_SPARSE_KINDS[kind]} {level['sparsity']:g}%"
    elif kind == "quant":
        text = f"{level['bits']}-bit"
    else:
        text = f"UPop {tag.split('-', 1)[1]}"
    return f"{ARCH_TITLES.get(arch, arch)} {text}" if with_arch and arch else text


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def shot_label(n_shots: Any) -> str:
    """``"full"`` for None / NaN (the full training set), else the integer as text."""
    if n_shots is None or (isinstance(n_shots, float) and math.isnan(n_shots)) or n_shots == "full":
        return "full"
    return str(int(n_shots))


def _shot_sort(label: str) -> float:
    return math.inf if label == "full" else float(label)


def _ordered_shots(labels: Any) -> list[str]:
    # Numeric order with "full" last is the paper's order for the grid and places any extra budget sensibly.
    return sorted(set(labels), key=_shot_sort)


PAPER_SHOT_LABELS = tuple(shot_label(n) for n in SHOTS_GRID)


# --- data preparation -----------------------------------------------------------------------------------------

def _prepare(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in ("model", "dataset", "method", "n_shots", *metrics) if c not in df.columns]
    if missing:
        raise SpecError(f"the result table has no column(s) {missing}; pass ResultStore(root).table()")
    data = df.copy()
    data["shot"] = [shot_label(v) for v in data["n_shots"]]
    for metric in metrics:
        data[metric] = pd.to_numeric(data[metric], errors="coerce")  # JSON null -> NaN
    return data


def seed_stats(df: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """Mean, min, max, std (ddof=1) and count of ``metric`` over the rows (seeds) of each ``by`` group."""
    data = df.dropna(subset=[metric])
    if data.empty:
        return pd.DataFrame(columns=[*by, "mean", "min", "max", "std", "count"])
    grouped = data.groupby(list(by), sort=False)[metric]
    return grouped.agg(["mean", "min", "max", "std", "count"]).reset_index()


def _band(stats: pd.DataFrame, spread: str) -> tuple[np.ndarray, np.ndarray]:
    if spread == "minmax":
        return stats["min"].to_numpy(float), stats["max"].to_numpy(float)
    std = stats["std"].fillna(0).to_numpy(float)
    return stats["mean"].to_numpy(float) - std, stats["mean"].to_numpy(float) + std


def _draw_series(ax: Any, x: Sequence[float], stats: pd.DataFrame, *, label: str, color: Any, linestyle: str = "-",
                 marker: str = "o", spread: str = "minmax") -> None:
    if spread not in ("minmax", "std"):
        raise UnknownNameError("spread", spread, ("minmax", "std"))
    ax.plot(x, stats["mean"].to_numpy(float), linestyle=linestyle, marker=marker, markersize=4, color=color,
            label=label)
    if (stats["count"] > 1).any():
        lo, hi = _band(stats, spread)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def _colors(n: int, names: Sequence[str] | None = None) -> list[Any]:
    from matplotlib import colormaps

    cycle = colormaps["tab10"].colors
    dense = [i for i, name in enumerate(names or ()) if compression_kind(name) == "dense"]
    out, k = [], 0
    for i in range(n):
        if len(dense) == 1 and i == dense[0]:
            out.append("black")  # a lone dense reference is black in every figure
        else:
            out.append(cycle[k % len(cycle)])
            k += 1
    return out


def _grid(n_panels: int, ncols: int, nrows: int | None = None, panel: tuple[float, float] = _PANEL
          ) -> tuple[Figure, list[Any]]:
    n_panels = max(n_panels, 1)
    ncols = max(1, min(ncols, n_panels))
    nrows = nrows or math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n_panels:]:
        fig.delaxes(ax)
    return fig, list(axes.flat[:n_panels])


def _legend(fig: Figure, axes: Sequence[Any], ncols: int = 4) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=min(ncols, len(handles)), frameon=False, fontsize="small")


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="0.5")


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


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
                      methods: str | Sequence[str] = ("ilm",), *, metric: str = "acc", spread: str = "minmax",
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
                 heat_methods: Sequence[str] = ("ilm", "flm"), spread: str = "minmax", vlim: float | None = None
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
                        n_shots: int | None = None, spread: str = "minmax", ncols: int = 4, title: str | None = None
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


# --- label mapping and class-wise changes (Figs 1, 19) ---------------------------------------------------------

def _as_hwc(image: Any) -> np.ndarray:
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 1)
    return array.squeeze(-1) if array.shape[-1] == 1 else array


def _pick_classes(dense: Mapping[str, Any], compressed: Mapping[str, Any], classes: Sequence[str | int] | None,
                  n_classes: int, names: Sequence[str]) -> list[int]:
    if classes is not None:
        return [names.index(c) if isinstance(c, str) else int(c) for c in classes]
    # Classes the two models map differently first: that is where Fig. 1 makes its point.
    differ = [i for i in range(len(names)) if dense["mapping"][i] != compressed["mapping"][i]]
    same = [i for i in range(len(names)) if i not in differ]
    return (differ + same)[:n_classes]


def label_mapping_examples(record_dense: Mapping[str, Any], record_compressed: Mapping[str, Any], target: Any, *,
                           classes: Sequence[str | int] | None = None, n_classes: int = 4, n_images: int = 2,
                           source_examples: Callable[[int], Any] | None = None,
                           labels: tuple[str, str] | None = None) -> Figure:
    """Fig. 1: per target class, example images, then the source class each model maps it to.

    ``target`` is a ``data.ImageSplit`` of the target dataset. ``source_examples(source_index)``
    returns an image of that source class (uint8 or [0, 1], CHW or HWC) or None; with None, or no
    callable, the mapped class is shown by name alone. Classes default to those mapped differently.
    """
    names = list(record_dense.get("classes") or target.classes)
    if len(record_compressed["mapping"]) != len(names) or len(record_dense["mapping"]) != len(names):
        raise SpecError("the two records map different numbers of target classes; pass runs on the same dataset")
    labels = labels or (model_label(record_dense["spec"]["model"], True),
                        model_label(record_compressed["spec"]["model"], True))
    picked = _pick_classes(record_dense, record_compressed, classes, n_classes, names)
    target_labels = np.asarray(target.labels)
    ncols = n_images + 2
    fig = Figure(figsize=(1.7 * ncols, 1.9 * len(picked) + 0.3), layout="constrained")
    axes = fig.subplots(max(len(picked), 1), ncols, squeeze=False)
    for row, cls in zip(axes, picked, strict=False):
        shown = np.flatnonzero(target_labels == cls)[:n_images]
        for j, ax in enumerate(row[:n_images]):
            if j < len(shown):
                ax.imshow(_as_hwc(target.images[int(shown[j])]))
            ax.set_title(f"target: {names[cls]}" if j == 0 else "", fontsize="small", loc="left")
        for ax, rec, who in zip(row[n_images:], (record_dense, record_compressed), labels, strict=False):
            src = int(rec["mapping"][cls])
            src_names = rec.get("mapped_source_classes") or []
            src_name = src_names[cls] if cls < len(src_names) else str(src)
            image = source_examples(src) if source_examples is not None else None
            if image is not None:
                ax.imshow(_as_hwc(image))
            else:
                ax.text(0.5, 0.5, src_name, ha="center", va="center", wrap=True, fontsize="small",
                        transform=ax.transAxes)
            ax.set_title(f"{who} →\n{src_name}", fontsize="small")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def _per_class(records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str]]:
    records = [records] if isinstance(records, Mapping) else list(records)
    if not records:
        raise SpecError("classwise_changes needs at least one record per model")
    accs = np.array([[np.nan if v is None else v for v in r["metrics"]["per_class_acc"]] for r in records], float)
    seen = np.isfinite(accs).sum(axis=0)
    mean = np.where(seen > 0, np.nansum(accs, axis=0) / np.maximum(seen, 1), np.nan)  # nanmean without its warning
    return mean, list(records[0]["classes"])


def classwise_delta(record_dense: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                    record_sparse: Mapping[str, Any] | Sequence[Mapping[str, Any]], k: int = 5) -> pd.DataFrame:
    """The ``k`` classes with the largest drops (Delta = dense - sparse > 0) and the ``k`` largest gains (< 0).

    A list of records per side (seeds) is averaged per class first. Classes without test samples are
    skipped. Rows: drops, largest first, then gains, largest first; ties keep class order.
    """
    dense, classes = _per_class(record_dense)
    sparse, _ = _per_class(record_sparse)
    if len(dense) != len(sparse):
        raise SpecError("dense and sparse records have different numbers of classes; pass runs on the same dataset")
    delta = dense - sparse
    table = pd.DataFrame({"class": classes, "class_index": range(len(classes)), "dense_acc": dense,
                          "sparse_acc": sparse, "delta": delta}).dropna(subset=["delta"])
    drops = table[table["delta"] > 0].sort_values("delta", ascending=False, kind="stable").head(k)
    gains = table[table["delta"] < 0].sort_values("delta", ascending=True, kind="stable").head(k)
    out = pd.concat([drops.assign(change="drop"), gains.assign(change="gain")], ignore_index=True)
    return out


def classwise_changes(record_dense: Any, record_sparse: Any, k: int = 5, *, title: str | None = None) -> Figure:
    """Fig. 19: bars of Delta for the ``k`` largest drops and gains of the sparse model vs the dense one.

    Each side is a record or a list of seed records; or pass two dicts ``{dataset title: records}``
    with the same keys for one panel per dataset.
    """
    if isinstance(record_dense, Mapping) and "metrics" not in record_dense:
        pairs = [(name, record_dense[name], record_sparse[name]) for name in record_dense]
    else:
        first = record_dense if isinstance(record_dense, Mapping) else record_dense[0]
        pairs = [(title or dataset_title(first.get("spec", {}).get("dataset", "")), record_dense, record_sparse)]
    fig, axes = _grid(len(pairs), len(pairs), panel=(3.8, 0.32 * 2 * k + 1.2))
    for ax, (name, dense, sparse) in zip(axes, pairs, strict=False):
        # barh draws upwards: ascending Delta puts the largest drop on top and the largest gain at the bottom
        table = classwise_delta(dense, sparse, k).sort_values("delta", kind="stable")
        for change, color, label in (("drop", "tab:red", "dense better (drop)"),
                                     ("gain", "tab:blue", "sparse better (gain)")):
            y = np.flatnonzero(table["change"].to_numpy() == change)
            ax.barh(y, table["delta"].to_numpy()[y], color=color, label=label)
        ax.set_yticks(range(len(table)), table["class"], fontsize="small")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("Δ = dense − sparse accuracy (points)")
        ax.set_title(name)
        if table.empty:
            _no_data(ax)
    _legend(fig, axes, ncols=2)
    return fig


# --- prompts and training dynamics (Fig. 20) -------------------------------------------------------------------

def prompt_evolution(prompts_dense: Mapping[int, Any], prompts_sparse: Mapping[int, Any], *,
                     epochs: Sequence[int] | None = None, labels: tuple[str, str] = ("Dense", "Sparse"),
                     max_cols: int = 6) -> Figure:
    """Fig. 20a: the learned prompt frame at several epochs, dense (top row) vs sparse (bottom row)."""
    common = sorted(set(prompts_dense) & set(prompts_sparse))
    if epochs is None:
        keep = np.unique(np.linspace(0, len(common) - 1, min(max_cols, len(common))).round().astype(int))
        epochs = [common[i] for i in keep] if common else []
    if not epochs:
        raise SpecError("no epoch has a saved prompt for both models; run with RunSpec(save_prompts=(...)) on both")
    fig = Figure(figsize=(1.8 * len(epochs) + 0.6, 4.0), layout="constrained")
    axes = fig.subplots(2, len(epochs), squeeze=False)
    for col, epoch in enumerate(epochs):
        for row, (prompts, label) in enumerate(zip((prompts_dense, prompts_sparse), labels, strict=False)):
            ax = axes[row, col]
            ax.imshow(_as_hwc(prompts[epoch]))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"epoch {epoch}", fontsize="small")
            if col == 0:
                ax.set_ylabel(label)
    return fig


def prompt_l2(prompts_by_model: Mapping[str, Mapping[int, Any]], reference: str | None = None) -> pd.DataFrame:
    """L2 norm of (reference prompt - other prompt) per saved epoch; reference = the first key by default.

    Returns columns ``model``, ``epoch``, ``l2``, over the epochs both prompts were saved at.
    """
    import torch

    keys = list(prompts_by_model)
    reference = reference or (keys[0] if keys else None)
    if reference not in prompts_by_model:
        raise UnknownNameError("reference model", str(reference), keys)
    base = prompts_by_model[reference]
    rows = []
    for name in keys:
        if name == reference:
            continue
        for epoch in sorted(set(base) & set(prompts_by_model[name])):
            diff = torch.as_tensor(base[epoch], dtype=torch.float64) - torch.as_tensor(prompts_by_model[name][epoch],
                                                                                       dtype=torch.float64)
            rows.append({"model": name, "epoch": int(epoch), "l2": float(torch.linalg.vector_norm(diff))})
    return pd.DataFrame(rows, columns=["model", "epoch", "l2"])


def prompt_distance(prompts_by_model: Mapping[str, Mapping[int, Any]], reference: str | None = None) -> Figure:
    """Fig. 20b (left): ||prompt_dense - prompt_sparse||_2 over epochs, one line per sparse model."""
    table = prompt_l2(prompts_by_model, reference)
    fig = Figure(figsize=(4.6, 3.3), layout="constrained")
    ax = fig.subplots()
    names = list(table["model"].unique())
    for name, color in zip(names, _colors(len(names)), strict=False):
        sub = table[table["model"] == name]
        label = model_label(name) if compression_kind(name) else name
        ax.plot(sub["epoch"], sub["l2"], marker="o", markersize=3, color=color, label=label)
    ax.set(xlabel="epoch", ylabel="‖prompt_dense − prompt_sparse‖₂")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(frameon=False, fontsize="small")
    else:
        _no_data(ax)
    return fig


def _default_record_label(records: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], str]:
    varying = [k for k in ("dataset", "method", "n_shots")
               if len({str(r["spec"].get(k)) for r in records}) > 1]
    with_arch = len({r["spec"]["model"].rpartition("/")[0] for r in records}) > 1

    def label(rec: Mapping[str, Any]) -> str:
        spec = rec["spec"]
        parts = [model_label(spec["model"], with_arch)]
        parts += [dataset_title(spec["dataset"]) if k == "dataset" else METHOD_LABELS.get(spec[k], spec[k])
                  if k == "method" else f"N={shot_label(spec[k])}" for k in varying]
        return ", ".join(parts)
    return label


def _curve_figure(records: Sequence[Mapping[str, Any]], xkey: str, ykey: str, ylabel: str,
                  label_by: Callable[[Mapping[str, Any]], str] | None, spread: str) -> Figure:
    records = [records] if isinstance(records, Mapping) else list(records)
    label_by = label_by or _default_record_label(records)
    rows = [{"label": label_by(r), "seed": r["spec"].get("seed"), "x": x, "y": y}
            for r in records for x, y in zip(r["curves"][xkey], r["curves"][ykey], strict=False)]
    data = pd.DataFrame(rows, columns=["label", "seed", "x", "y"])
    fig = Figure(figsize=(4.6, 3.3), layout="constrained")
    ax = fig.subplots()
    labels = list(dict.fromkeys(data["label"]))
    colors = _colors(len(labels))
    for label, color in zip(labels, colors, strict=False):
        stats = seed_stats(data[data["label"] == label], ["x"], "y").sort_values("x")
        _draw_series(ax, stats["x"].tolist(), stats, label=label, color=color, marker="", spread=spread)
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if labels:
        ax.legend(frameon=False, fontsize="small")
    else:
        _no_data(ax)
    return fig


def loss_curves(records: Sequence[Mapping[str, Any]], *, label_by: Callable[[Mapping[str, Any]], str] | None = None,
                spread: str = "minmax") -> Figure:
    """Fig. 20b (right): training loss per epoch, one line per model (seeds: mean and band)."""
    return _curve_figure(records, "epoch", "train_loss", "training loss", label_by, spread)


def accuracy_curves(records: Sequence[Mapping[str, Any]], *,
                    label_by: Callable[[Mapping[str, Any]], str] | None = None, spread: str = "minmax") -> Figure:
    """Test accuracy at each evaluated epoch, one line per model (seeds: mean and band)."""
    return _curve_figure(records, "eval_epoch", "test_acc", "test accuracy (%)", label_by, spread)
