"""Label-mapping and prompt figures: mapping examples (Fig. 1), class-wise changes (Fig. 19), prompts (Fig. 20)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import SpecError, UnknownNameError
from ._common import (
    METHOD_LABELS,
    _colors,
    _draw_series,
    _grid,
    _legend,
    _no_data,
    compression_kind,
    dataset_title,
    model_label,
    seed_stats,
    shot_label,
)

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
    return _finish(fig, ax, "‖prompt_dense − prompt_sparse‖₂", bool(names))


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
    return _finish(fig, ax, ylabel, bool(labels))


def loss_curves(records: Sequence[Mapping[str, Any]], *, label_by: Callable[[Mapping[str, Any]], str] | None = None,
                spread: str = "ci95") -> Figure:
    """Fig. 20b (right): training loss per epoch, one line per model (seeds: mean and band)."""
    return _curve_figure(records, "epoch", "train_loss", "training loss", label_by, spread)


def accuracy_curves(records: Sequence[Mapping[str, Any]], *,
                    label_by: Callable[[Mapping[str, Any]], str] | None = None, spread: str = "ci95") -> Figure:
    """Test accuracy at each evaluated epoch, one line per model (seeds: mean and band)."""
    return _curve_figure(records, "eval_epoch", "test_acc", "test accuracy (%)", label_by, spread)


def _finish(fig, ax, ylabel: str, has_data: bool):
    """The epoch axes' common ending: labels, grid, and a legend, or a note that there was nothing to draw."""
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if has_data:
        ax.legend(frameon=False, fontsize="small")
    else:
        _no_data(ax)
    return fig
