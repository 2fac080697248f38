"""The report's numbers: accuracy with its seed interval, the paired gaps (``intervals.paired_gaps``) and the
verdicts in the paper's terms."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..stats import intervals
from ..stats.verdicts import verdict_words
from .report_config import ReportConfig, method_label


def accuracy_table(df: pd.DataFrame, config: ReportConfig, metric: str = "acc") -> pd.DataFrame:
    """Per dataset, N, method and model: mean of ``metric`` over seeds with its 95 % t-interval."""
    rows = []
    for (dataset, shots, method, model), part in df.groupby(["dataset", "shots", "method", "model"], sort=False):
        mean, low, high = intervals.t_interval(part[metric].tolist())
        rows.append({"dataset": dataset, "shots": shots, "method": method, "model": model,
                     "role": _role(model, config), "seeds": len(part), "mean": mean, "low": low, "high": high})
    return _ordered(pd.DataFrame(rows, columns=["dataset", "shots", "method", "model", "role", "seeds", "mean", "low",
                                                "high"]), config)


def gap_table(df: pd.DataFrame, config: ReportConfig, metric: str, *, compressed_minus_dense: bool = False,
              predictions: dict[str, Any] | None = None) -> pd.DataFrame:
    """Paired gap per compressed model, dataset, method and N (``intervals.paired_gaps``; a pair shares the
    method), dense minus compressed, or compressed minus dense (for ECE, where larger is worse). With
    ``predictions`` (run id -> per-image outcomes) the interval counts the test set; in a fixed-width study it
    is Stein's (the pilot's sd)."""
    pilot = config.pilot_seeds if config.target_halfwidth is not None else None
    gaps = intervals.paired_gaps(df, {"report": (config.dense, list(config.compressed))}, metric,
                                 methods=config.methods, predictions=predictions, pilot=pilot)
    if compressed_minus_dense:
        flipped = {"above 0": "below 0", "below 0": "above 0"}
        gaps = gaps.assign(gap=-gaps["gap"], gap_low=-gaps["gap_high"], gap_high=-gaps["gap_low"],
                           verdict=gaps["verdict"].map(lambda v: flipped.get(v, v)))
    gaps = gaps.drop(columns=["family", "dense"])
    return _ordered(gaps, config)


def _role(model: str, config: ReportConfig) -> str:
    return "dense" if model == config.dense else "compressed"


def _shot_rank(label: str) -> float:
    return math.inf if label == "full" else float(label)


def _ordered(table: pd.DataFrame, config: ReportConfig) -> pd.DataFrame:
    if table.empty:
        return table.reset_index(drop=True)
    key = {"dataset": {d: i for i, d in enumerate(config.datasets)},
           "method": {m: i for i, m in enumerate(config.methods)},
           "model": {m: i for i, m in enumerate(config.models)}}
    by = [c for c in ("dataset", "shots", "method", "model") if c in table.columns]
    return table.sort_values(by, key=lambda col: col.map(_shot_rank) if col.name == "shots"
                             else col.map(key[col.name])).reset_index(drop=True)


def _interval_text(mean: float, low: float, high: float, digits: int = 1) -> str:
    if math.isnan(low):
        return f"{mean:.{digits}f} (one seed: no interval)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _methods_of(table: pd.DataFrame) -> list[str | None]:
    return list(dict.fromkeys(table["method"])) if "method" in table.columns else [None]


def _of(table: pd.DataFrame, **where: object) -> pd.DataFrame:
    sel = pd.Series(True, index=table.index)
    for column, value in where.items():
        if value is not None and column in table.columns:
            sel &= table[column] == value
    return table[sel]


def verdicts(acc_gaps: pd.DataFrame, ece_gaps: pd.DataFrame, ece_ts_gaps: pd.DataFrame) -> list[str]:
    """One plain paragraph per (dataset, compressed model, method), in the paper's terms; then, per (dataset,
    compressed model), where LP sees a gap that a VP method's interval is too wide to see (``vp_too_wide``)."""
    out = []
    for (dataset, model), cell in acc_gaps.groupby(["dataset", "model"], sort=False):
        for method in _methods_of(cell):
            part = _of(cell, method=method)
            if not part.empty:
                out.append(_verdict(part, ece_gaps, ece_ts_gaps, dataset, model, method))
        wide = vp_too_wide(cell)
        if wide:
            out.append(f"**{model} on {dataset}, VP beside LP**: " + " ".join(wide))
    return out


def _verdict(part: pd.DataFrame, ece_gaps: pd.DataFrame, ece_ts_gaps: pd.DataFrame, dataset: str, model: str,
             method: str | None) -> str:
    part = part.sort_values("shots", key=lambda c: c.map(_shot_rank))
    how = f" ({method_label(method)})" if method is not None else ""
    cells = [f"N={r.shots}: {r.gap:+.1f} points [{r.gap_low:+.1f}, {r.gap_high:+.1f}], {r.pairs} seeds, "
             f"{verdict_words(r.verdict)}"
             if not math.isnan(r.gap_low) else f"N={r.shots}: {r.gap:+.1f} points (one seed: no verdict)"
             for r in part.itertuples()]
    worse = part[part["beyond_noise"] & (part["gap"] > 0)]
    better = part[part["beyond_noise"] & (part["gap"] < 0)]
    if len(worse):
        head = (f"**{model} on {dataset}{how} pays an accuracy cost** beyond noise (seeds and test set) at N = "
                f"{', '.join(worse['shots'])}")
    elif len(better):
        head = (f"**{model} on {dataset}{how} transfers better than the dense model** at N = "
                f"{', '.join(better['shots'])}")
    elif (part["pairs"] < intervals.MIN_VERDICT_SEEDS).all():
        head = f"**{model} on {dataset}{how}: no verdict** (fewer than {intervals.MIN_VERDICT_SEEDS} seeds)"
    else:
        head = f"**{model} on {dataset}{how}: no accuracy gap beyond noise**"
    text = f"{head}. Dense minus compressed accuracy (paired by seed, 95 % interval): {'; '.join(cells)}."
    if len(part) >= 2 and len(worse):
        first, last = part.iloc[0], part.iloc[-1]
        trend = "shrinks" if abs(last.gap) < abs(first.gap) else "does not shrink"
        text += (f" The gap {trend} with more data (N={first.shots}: {first.gap:+.1f}, "
                 f"N={last.shots}: {last.gap:+.1f}).")
    calibration = _calibration_sentence(_of(ece_gaps, method=method), _of(ece_ts_gaps, method=method), dataset, model)
    return text + (" " + calibration if calibration else "")


def vp_too_wide(acc_gaps: pd.DataFrame, probe: str = "lp") -> list[str]:
    """Per (dataset, N, compressed model) and VP method: one sentence where the linear probe's accuracy gap is
    beyond noise and the VP method's is not. If VP's half-width is at least the size of LP's gap, VP's interval
    is too wide to see a gap of that size (even a VP gap exactly LP's would leave 0 inside it: the usual case,
    VP's seed noise); if it is narrower and excludes LP's gap, the two methods disagree; if it still holds both,
    it is not decisive. ``acc_gaps``: ``gap_table`` rows (dense minus compressed,
    with a ``method`` column); nothing where LP or a VP method is missing."""
    if acc_gaps.empty or "method" not in acc_gaps.columns:
        return []
    out = []
    for (dataset, model, shots), cell in acc_gaps.groupby(["dataset", "model", "shots"], sort=False):
        lp = cell[cell["method"] == probe]
        if lp.empty or not bool(lp.iloc[0]["beyond_noise"]):
            continue
        lp = lp.iloc[0]
        size = abs(lp.gap)
        what = "cost" if lp.gap > 0 else "benefit (compressed better)"
        for vp in cell[cell["method"] != probe].itertuples():
            if vp.beyond_noise or math.isnan(vp.halfwidth):
                continue
            seen = (f"At N={shots} on {dataset}, {method_label(probe)} sees a {what} of {lp.gap:+.1f} points "
                    f"[{lp.gap_low:+.1f}, {lp.gap_high:+.1f}] ({lp.pairs} seeds) for {model}")
            vp_text = (f"{method_label(vp.method)}'s interval (+-{vp.halfwidth:.1f}: {vp.gap:+.1f} "
                       f"[{vp.gap_low:+.1f}, {vp.gap_high:+.1f}], {vp.pairs} seeds)")
            if vp.halfwidth >= size:
                out.append(f"{seen}; {vp_text} is too wide to see a gap of that size.")
            elif vp.gap_low <= lp.gap <= vp.gap_high:
                out.append(f"{seen}; {vp_text} holds both 0 and that gap: not decisive.")
            else:
                out.append(f"{seen}; {vp_text} excludes a gap of that size: the two methods disagree.")
    return out


def _calibration_sentence(ece_gaps: pd.DataFrame, ece_ts_gaps: pd.DataFrame, dataset: str, model: str) -> str:
    sel = (ece_gaps["dataset"] == dataset) & (ece_gaps["model"] == model)
    part = ece_gaps[sel]
    if part.empty:
        return ""
    worse = part[part["beyond_noise"] & (part["gap"] > 0)]
    better = part[part["beyond_noise"] & (part["gap"] < 0)]
    if len(worse):
        text = f"Calibration: ECE is worse than the dense model's beyond noise at N = {', '.join(worse['shots'])}"
    elif len(better):
        text = ("Calibration: ECE is better than the dense model's beyond noise at N = "
                f"{', '.join(better['shots'])}")
    else:
        text = "Calibration: no ECE difference beyond noise"
    text += f" (compressed minus dense ECE, mean over N: {100 * part['gap'].mean():+.1f} points)."
    ts = ece_ts_gaps[(ece_ts_gaps["dataset"] == dataset) & (ece_ts_gaps["model"] == model)]
    if ts.empty:
        return text
    text += f" After temperature scaling: {100 * ts['gap'].mean():+.1f} points"
    if len(worse):
        still = ts[ts["beyond_noise"] & (ts["gap"] > 0) & ts["shots"].isin(worse["shots"])]
        text += (f", still worse beyond noise at N = {', '.join(still['shots'])}: not fixable by a temperature."
                 if len(still) else ", within noise where it was worse: the calibration cost is fixable post hoc.")
    else:
        text += "."
    return text


def _in_points(gaps: pd.DataFrame) -> pd.DataFrame:
    """An ECE gap table (fractions) in points, as the report shows ECE; the verdicts' "+-H" in points too."""
    scaled = gaps.assign(**{c: 100 * gaps[c] for c in ("gap", "gap_low", "gap_high", "halfwidth", "mde")})
    if scaled.empty:
        return scaled
    return scaled.assign(verdict=[intervals.verdict(r.gap_low, r.gap_high, r.pairs) for r in scaled.itertuples()])
