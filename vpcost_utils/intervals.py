"""Seed spread as intervals: a metric's mean with a 95 % t-interval over seeds, and the paired gap.

The paper's question is whether a compressed model transfers worse than its dense parent. Runs of
the two that share dataset, N-shot budget, method and seed saw the same training images (the N-shot
sample is drawn from the seed alone) and the same test images, so their difference is a *paired*
observation: the interval of the mean per-seed difference is much narrower than the two
accuracies' own intervals would suggest. With k seeds the interval is Student's t with k-1
degrees of freedom; with one seed there is no interval (NaN), never a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

KEYS = ("dataset", "method", "n_shots")


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of ``values`` (Student's t); low = high = NaN below two values."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _shots_label(n: float) -> str:
    return "full" if pd.isna(n) else str(int(n))


def _by_cell(runs: pd.DataFrame, metric: str) -> pd.Series:
    # Runs that differ only in what they save (Fig. 20's prompt snapshots) train identically: one value per cell.
    return runs.groupby([*KEYS, "seed"], dropna=False)[metric].mean()


def paired_gaps(df: pd.DataFrame, families: Mapping[str, tuple[str, Sequence[str]]], metric: str = "acc", *,
                methods: Sequence[str] = ("ilm",), level: float = 0.95) -> pd.DataFrame:
    """Dense minus compressed ``metric`` per (family, compressed model, dataset, method, N), paired by seed.

    Columns: family, model, dense, dataset, method, shots, pairs, dense_mean, model_mean, gap, gap_low,
    gap_high, beyond_noise (the interval excludes 0). Positive gap: the compressed model has less of
    ``metric`` (for accuracy: transfers worse; for ECE: is *better* calibrated).
    """
    rows = []
    data = df[df["method"].isin(methods)]
    for family, (dense, compressed) in families.items():
        base = _by_cell(data[data["model"] == dense], metric)
        for model in compressed:
            other = _by_cell(data[data["model"] == model], metric)
            joined = pd.concat({"dense": base, "model": other}, axis=1, join="inner").dropna()
            if joined.empty:
                continue
            for key, part in joined.groupby(level=list(KEYS), dropna=False, sort=True):
                gap, low, high = t_interval((part["dense"] - part["model"]).tolist(), level)
                rows.append({"family": family, "model": model, "dense": dense, "dataset": key[0], "method": key[1],
                             "shots": _shots_label(key[2]), "pairs": len(part),
                             "dense_mean": float(part["dense"].mean()), "model_mean": float(part["model"].mean()),
                             "gap": gap, "gap_low": low, "gap_high": high,
                             "beyond_noise": bool(low > 0 or high < 0) if not math.isnan(low) else False})
    columns = ["family", "model", "dense", "dataset", "method", "shots", "pairs", "dense_mean", "model_mean", "gap",
               "gap_low", "gap_high", "beyond_noise"]
    return pd.DataFrame(rows, columns=columns)


def describe_gaps(gaps: pd.DataFrame, metric: str = "accuracy") -> str:
    """One sentence per N-shot budget: mean gap over cells and how many cells' intervals exclude zero."""
    if gaps.empty:
        return f"No paired {metric} results to compare."
    parts = []
    order = sorted(gaps["shots"].unique(), key=lambda s: math.inf if s == "full" else int(s))
    for shots in order:
        part = gaps[gaps["shots"] == shots]
        parts.append(f"N={shots}: {part['gap'].mean():+.2f} on average, {int(part['beyond_noise'].sum())} of "
                     f"{len(part)} cells beyond seed noise")
    return f"Dense minus compressed {metric} (paired by seed, 95 % t-intervals): " + "; ".join(parts) + "."
