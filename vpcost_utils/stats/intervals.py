"""Seed spread as intervals: a metric's mean with a 95 % t-interval over seeds, and the paired gap.

The paper's question is whether a compressed model transfers worse than its dense parent. Runs of
the two that share dataset, N-shot budget, method and seed saw the same training images (the N-shot
sample is drawn from the seed alone), the same batch order and the same test images, so their
difference is a *paired* observation.

The interval of a paired gap counts two sources of noise:

- the seeds: the per-seed gaps' spread, ``s^2 / k`` for k seeds;
- the test set: every run is scored on one finite set of images, so the mean gap carries that set's
  sampling error, the same for every seed (more seeds do not shrink it). It is the variance of the
  per-image gap averaged over seeds, divided by the number of images (accuracy: exact; ECE: a
  bootstrap over images). This counts the seed-by-image interaction once more (``/ (k n)``), so it
  errs wide.

The two add, and the t quantile keeps the seed term's k - 1 degrees of freedom. (Welch-Satterthwaite
would give more when the test term dominates, and then an interval *narrower* than the seeds' own: with
3 seeds the 4.30 quantile drops towards 2 faster than the added variance widens it. k - 1 never does that
and errs wide.) Without per-image outcomes (records from before they were stored) only the seed term
is counted, and the ``test_noise`` column says so. There is no verdict below three seeds, nor from a
zero-width interval.

Fixed-width intervals: ``stein_seeds`` is the second stage of Stein's two-stage procedure. A pilot of
n0 seeds gives s0; the cell then runs ``n = max(n0, ceil(s0^2 / ((H / t)^2 - v_test)))`` seeds in all,
``t`` the (0.975, n0 - 1) quantile, and its interval is ``mean of the n gaps +- t * sqrt(s0^2 / n +
v_test)``: at most H on each side by construction, exact coverage for normal seed noise (the mean of
the n seeds is independent of the pilot's s0), checked by simulation with heavy-tailed noise too
(tests/test_intervals.py). The pilot alone decides n: no peeking at the interval as seeds come in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

KEYS = ("dataset", "method", "n_shots")
MIN_VERDICT_SEEDS = 3
POWER = 0.8  # the minimum detectable gap is the true gap this study finds at this power (two-sided 5 %)
BOOTSTRAP = 200  # image resamples for a non-linear metric's test-set variance


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


@dataclass(frozen=True)
class GapInterval:
    """A paired gap with the noise it counts. ``verdict``: "above 0", "below 0", "within +-H" or "no verdict"."""

    gap: float
    low: float
    high: float
    seeds: int
    seed_sd: float  # the sd the seed term used (Stein: the pilot's)
    test_se: float  # the test set's standard error of the mean gap; NaN when not counted
    df: float
    halfwidth: float
    mde: float  # minimum detectable gap at 80 % power
    verdict: str
    rule: str  # "t" or "stein(n0=...)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(low: float, high: float, seeds: int) -> str:
    """Which side of zero the interval lies on, or how large a gap it rules out; none below three seeds."""
    if seeds < MIN_VERDICT_SEEDS:
        return f"no verdict ({seeds} seed{'s' if seeds != 1 else ''}; needs {MIN_VERDICT_SEEDS})"
    if math.isnan(low) or not high > low:
        return "no verdict (zero-width interval)"
    if low > 0:
        return "above 0"
    if high < 0:
        return "below 0"
    return f"within +-{max(abs(low), abs(high)):.3g}"


def gap_interval(gaps: Sequence[float], test_var: float | None = None, level: float = 0.95, *,
                 pilot: int | None = None) -> GapInterval:
    """The interval of the mean of per-seed ``gaps`` (seed order), the test set's variance added.

    ``pilot``: Stein's rule; the first ``pilot`` gaps give the sd and the degrees of freedom.
    """
    from scipy import stats

    x = np.asarray(gaps, dtype=float)
    k = len(x)
    mean = float(x.mean()) if k else math.nan
    v_test = 0.0 if test_var is None or math.isnan(test_var) else float(test_var)
    base = x[:pilot] if pilot else x
    if len(base) < 2:
        return GapInterval(mean, math.nan, math.nan, k, math.nan, _sqrt(test_var), math.nan, math.nan, math.nan,
                           verdict(math.nan, math.nan, k), "t")
    sd = float(base.std(ddof=1))
    seed_var = sd ** 2 / k
    total = seed_var + v_test
    df = len(base) - 1  # the seed term's (Stein: the pilot's), whatever the test term adds; see the docstring
    se = math.sqrt(total)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se if se > 0 else 0.0
    mde = (float(stats.t.ppf(0.5 + level / 2, df)) + float(stats.t.ppf(POWER, df))) * se
    low, high = mean - half, mean + half
    return GapInterval(mean, low, high, k, sd, _sqrt(test_var), df, half, mde, verdict(low, high, k),
                       f"stein(n0={pilot})" if pilot else "t")


def _sqrt(value: float | None) -> float:
    return math.sqrt(value) if value is not None and not math.isnan(value) else math.nan


def stein_seeds(pilot_gaps: Sequence[float], halfwidth: float, test_var: float = 0.0, level: float = 0.95
                ) -> int | None:
    """Seeds in all (pilot included) for a half-width of at most ``halfwidth``; None if no number reaches it
    (the test set's own error alone is wider: more test images are needed, not more seeds)."""
    from scipy import stats

    n0 = len(pilot_gaps)
    if n0 < 2:
        raise ValueError(f"Stein's rule needs a pilot of at least 2 seeds, got {n0}")
    t = float(stats.t.ppf(0.5 + level / 2, n0 - 1))
    room = (halfwidth / t) ** 2 - test_var
    if room <= 0:
        return None
    s0 = float(np.std(np.asarray(pilot_gaps, dtype=float), ddof=1))
    return max(n0, math.ceil(s0 ** 2 / room))


def test_set_variance(dense: Sequence[Mapping[str, np.ndarray]], compressed: Sequence[Mapping[str, np.ndarray]],
                      metric: str, *, seed: int = 0) -> float:
    """Variance of the seed-mean gap (dense minus compressed, in the metric's units) from the finite test set.

    ``dense`` / ``compressed``: per seed, ``metrics.decode_predictions`` of the run (same images, same order).
    ``acc`` in points (exact); ``ece`` as a fraction, by a bootstrap over images shared by all runs.
    """
    if metric == "acc":
        per_image = np.mean([100.0 * (d["correct"].astype(float) - c["correct"].astype(float))
                             for d, c in zip(dense, compressed, strict=True)], axis=0)
        return float(per_image.var(ddof=1) / len(per_image))
    if metric != "ece":
        return math.nan
    rng = np.random.default_rng(seed)
    n = len(dense[0]["correct"])
    draws = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        draws.append(np.mean([_ece(d, idx) - _ece(c, idx) for d, c in zip(dense, compressed, strict=True)]))
    return float(np.var(draws, ddof=1))


def _ece(pred: Mapping[str, np.ndarray], idx: np.ndarray, n_bins: int = 15) -> float:
    # the same estimator as metrics.ece: (lo, hi] bins over the top-label confidence
    conf, correct = pred["conf"][idx].astype(float), pred["correct"][idx].astype(float)
    bins = np.clip(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:], conf, side="left"), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, conf, n_bins))
    return float(gap.sum() / count.sum())


def _shots_label(n: float) -> str:
    return "full" if pd.isna(n) else str(int(n))


def _by_cell(runs: pd.DataFrame, column: str) -> pd.Series:
    # Runs that differ only in what they save (Fig. 20's prompt snapshots) train identically: one value per cell.
    if column == "run_id":
        return runs.groupby([*KEYS, "seed"], dropna=False)[column].first()
    return runs.groupby([*KEYS, "seed"], dropna=False)[column].mean()


GAP_COLUMNS = ["family", "model", "dense", "dataset", "method", "shots", "pairs", "dense_mean", "model_mean", "gap",
               "gap_low", "gap_high", "halfwidth", "seed_sd", "test_se", "mde", "verdict", "rule", "test_noise",
               "beyond_noise"]


def paired_gaps(df: pd.DataFrame, families: Mapping[str, tuple[str, Sequence[str]]], metric: str = "acc", *,
                methods: Sequence[str] = ("ilm",), level: float = 0.95,
                predictions: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                pilot: Mapping[tuple, int] | int | None = None) -> pd.DataFrame:
    """Dense minus compressed ``metric`` per (family, compressed model, dataset, method, N), paired by seed.

    Columns: ``GAP_COLUMNS``. Positive gap: the compressed model has less of ``metric`` (for accuracy:
    transfers worse; for ECE: is *better* calibrated). ``predictions`` (run id -> decoded per-image outcomes,
    ``df`` then needs a ``run_id`` column) adds the test set's noise; ``pilot`` (an int, or per
    ``(model, dataset, shots)``) makes the interval Stein's second stage. ``beyond_noise``: the interval
    lies on one side of zero with at least three seeds.
    """
    rows = []
    data = df[df["method"].isin(methods)]
    for family, (dense, compressed) in families.items():
        base = _by_cell(data[data["model"] == dense], metric)
        base_ids = _by_cell(data[data["model"] == dense], "run_id") if predictions is not None else None
        for model in compressed:
            sub = data[data["model"] == model]
            parts = {"dense": base, "model": _by_cell(sub, metric)}
            if base_ids is not None:
                parts.update(dense_id=base_ids, model_id=_by_cell(sub, "run_id"))
            joined = pd.concat(parts, axis=1, join="inner").dropna()
            if joined.empty:
                continue
            for key, part in joined.groupby(level=list(KEYS), dropna=False, sort=True):
                part = part.sort_index(level="seed")
                shots = _shots_label(key[2])
                test_var, noise = None, "not counted (no per-image outcomes)"
                if predictions is not None and all(i in predictions for i in (*part["dense_id"], *part["model_id"])):
                    test_var = test_set_variance([predictions[i] for i in part["dense_id"]],
                                                 [predictions[i] for i in part["model_id"]], metric)
                    noise = "counted" if not math.isnan(test_var) else noise
                n0 = pilot.get((model, key[0], shots)) if isinstance(pilot, Mapping) else pilot
                g = gap_interval((part["dense"] - part["model"]).tolist(), test_var, level,
                                 pilot=n0 if n0 and n0 < len(part) else None)
                rows.append({"family": family, "model": model, "dense": dense, "dataset": key[0], "method": key[1],
                             "shots": shots, "pairs": len(part),
                             "dense_mean": float(part["dense"].mean()), "model_mean": float(part["model"].mean()),
                             "gap": g.gap, "gap_low": g.low, "gap_high": g.high, "halfwidth": g.halfwidth,
                             "seed_sd": g.seed_sd, "test_se": g.test_se, "mde": g.mde, "verdict": g.verdict,
                             "rule": g.rule, "test_noise": noise, "beyond_noise": g.verdict in ("above 0", "below 0")})
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def predictions_of(records: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]
                   ) -> dict[str, dict[str, np.ndarray]]:
    """Run id -> decoded per-image outcomes, for the records that store them."""
    from ..metrics import decode_predictions

    items = records.values() if isinstance(records, Mapping) else records
    return {r["run_id"]: decode_predictions(r["test_predictions"]) for r in items if r.get("test_predictions")}


def describe_gaps(gaps: pd.DataFrame, metric: str = "accuracy") -> str:
    """One sentence per N-shot budget: mean gap over cells and how many cells' intervals exclude zero."""
    if gaps.empty:
        return f"No paired {metric} results to compare."
    parts = []
    order = sorted(gaps["shots"].unique(), key=lambda s: math.inf if s == "full" else int(s))
    for shots in order:
        part = gaps[gaps["shots"] == shots]
        parts.append(f"N={shots}: {part['gap'].mean():+.2f} on average, {int(part['beyond_noise'].sum())} of "
                     f"{len(part)} cells beyond noise, median half-width {part['halfwidth'].median():.2f}")
    return f"Dense minus compressed {metric} (paired by seed, 95 % intervals): " + "; ".join(parts) + "."


#: Columns of a ``paired_gaps`` table that carry the metric's unit.
_UNIT_COLUMNS = ("dense_mean", "model_mean", "gap", "gap_low", "gap_high", "halfwidth", "seed_sd", "test_se", "mde")


def gaps_by_metric(runs: pd.DataFrame, families: dict, method: str, predictions: dict | None,
                   metrics: tuple[str, ...] = ("acc", "ece", "ece_temp_scaled")) -> pd.DataFrame:
    """``paired_gaps`` for each of ``metrics`` stacked in one table (a ``metric`` column), ECE in points (x100) so
    every row reads in the accuracy's unit, the verdict words recomputed in those points. The temperature-scaled
    ECE has no per-image outcomes: its interval counts the seeds only."""
    parts = []
    for metric in metrics:
        part = paired_gaps(runs, families, metric, methods=(method,),
                           predictions=predictions if metric != "ece_temp_scaled" else None)
        if metric != "acc":
            for col in _UNIT_COLUMNS:
                part[col] = part[col] * 100
            part["verdict"] = [verdict(lo, hi, k) for lo, hi, k in zip(part["gap_low"], part["gap_high"],
                                                                       part["pairs"], strict=True)]
        parts.append(part.assign(metric=metric))
    return pd.concat(parts, ignore_index=True)
