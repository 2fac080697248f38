"""Shared pieces of the figures: names and compression levels, seed statistics, panel grids and legends."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..config import SHOTS_GRID
from ..errors import SpecError, UnknownNameError

Family = tuple[str, Sequence[str]]  # (dense model, compressed models), as profiles.SPARSE_FAMILIES holds them

DATASET_TITLES = {
    "cifar10": "CIFAR-10", "svhn": "SVHN", "gtsrb": "GTSRB", "dtd": "DTD", "flowers102": "Flowers102",
    "oxford_pets": "OxfordPets", "eurosat": "EuroSAT", "caltech101": "Caltech101", "yelp_polarity": "Yelp",
    "imdb": "IMDB", "ag_news": "AG News", "dbpedia_14": "DBPedia", "splice": "DNA Splice",
    "synth_shapes": "synth_shapes (generated)", "digits": "digits (sklearn)",
}
METHOD_LABELS = {"rlm": "RLM-VP", "flm": "FLM-VP", "ilm": "ILM-VP", "blm": "BLM-VP", "blm+": "BLM+-VP",
                 "fullymap": "FullyMap-VP", "vp": "VP", "ilm-vp": "ILM-VP", "max": "max", "mean": "mean"}
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
# How a model built here from a dense one says how it was made, after its level (built/efficientnet_lite_recovered.py)
_SUFFIXES = ("bn", "recovered", "reconstructed", "wallpapers")
_RECIPE = "(?:-(?:" + "|".join(_SUFFIXES) + "))?"
_SUFFIX_FORM = "[" + "|".join(f"-{x}" for x in _SUFFIXES) + "]"
_TAG_FORMS = (*_DENSE_TAGS, "lt-<remaining %>", "acdc-<sparsity %>", "rigl-<sparsity %>",
              f"prune-<sparsity %>{_SUFFIX_FORM}", "gmp", f"w<bits>a<bits>{_SUFFIX_FORM}", "int<bits>-tflite",
              "upop-<factor>x")
_METHOD_STYLE = {"ilm": ("-", "o"), "flm": ("--", "s"), "rlm": (":", "^"), "blm": ("-.", "D"), "blm+": ("-.", "v"),
                 "fullymap": ((0, (5, 1)), "P"), "vp": ("--", "s"), "ilm-vp": ("-", "o"), "max": ("-", "o"),
                 "mean": ("--", "s")}
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
    if m := re.fullmatch(r"(acdc|rigl|prune|gmp)-(\d+(?:\.\d+)?)" + _RECIPE, tag):
        sparsity = float(m.group(2))
        return {"kind": m.group(1), "sparsity": sparsity, "remaining": round(100 - sparsity, 6), "bits": 32}
    if m := re.fullmatch(r"w(\d+)a(\d+)" + _RECIPE + r"|int(\d+)-tflite", tag):
        bits = int(m.group(1) or m.group(3))
        return {"kind": "quant", "sparsity": 0.0, "remaining": 100.0, "bits": bits}
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
    """Mean, min, max, std (ddof=1), count and the 95 % t-interval of the mean (``ci_low``, ``ci_high``)
    of ``metric`` over the rows (seeds) of each ``by`` group; the interval is ``intervals.t_interval``."""
    from ..stats.intervals import t_interval

    columns = [*by, "mean", "min", "max", "std", "count", "ci_low", "ci_high"]
    data = df.dropna(subset=[metric])
    if data.empty:
        return pd.DataFrame(columns=columns)
    grouped = data.groupby(list(by), sort=False)[metric]
    stats = grouped.agg(["mean", "min", "max", "std", "count"])
    bounds = grouped.apply(lambda v: t_interval(v.tolist())[1:])
    stats["ci_low"] = [b[0] for b in bounds.loc[stats.index]]
    stats["ci_high"] = [b[1] for b in bounds.loc[stats.index]]
    return stats.reset_index()[columns]


SPREADS = ("ci95", "minmax", "std")


def _band(stats: pd.DataFrame, spread: str) -> tuple[np.ndarray, np.ndarray]:
    mean = stats["mean"].to_numpy(float)
    if spread == "minmax":
        return stats["min"].to_numpy(float), stats["max"].to_numpy(float)
    if spread == "ci95":
        # one seed has no interval: the band collapses onto the mean rather than inventing a width
        return (stats["ci_low"].fillna(stats["mean"]).to_numpy(float),
                stats["ci_high"].fillna(stats["mean"]).to_numpy(float))
    std = stats["std"].fillna(0).to_numpy(float)
    return mean - std, mean + std


def _draw_series(ax: Any, x: Sequence[float], stats: pd.DataFrame, *, label: str, color: Any, linestyle: str = "-",
                 marker: str = "o", spread: str = "ci95") -> None:
    if spread not in SPREADS:
        raise UnknownNameError("spread", spread, SPREADS)
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
