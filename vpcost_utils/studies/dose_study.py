"""The dose-response study: transfer cost against how much of the dense function each compressed Lite0 keeps.

One resolved answer to "does more compression cost more transfer?" instead of one underpowered cell per model: every
compressed model's paired gap (dense minus compressed, accuracy and ECE, before and after temperature scaling), with
its interval over seeds and the test set, and one slope of the per-seed gaps against the function each model lost
upstream (100 minus its top-1 agreement with dense on held-out photographs, docs/models.md), with a t-interval over
seeds. Controls in every table: a null (``dense-copy``: the same weights under another name; its gap must be 0)
and a positive control (one-shot ``prune-70``, 0 % upstream agreement: the strongest damage we have). A table whose
positive control is not detected says so at its top and gives no verdict.

The design (``DESIGN``) was fixed before any result was read: ``python -m vpcost_utils.studies.dose_study run``
makes the
runs (resuming from the records: a rerun skips what is done), ``table`` writes the per-run CSV, the gap and slope
tables and the figure under ``docs/dose-study/``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import RunSpec
from ..running.store import ResultStore
from ..stats.intervals import gaps_by_metric, predictions_of, t_interval
from . import published

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dose-study"
DENSE, NULL, POSITIVE = "efficientnet_lite0/dense", "efficientnet_lite0/dense-copy", "efficientnet_lite0/prune-70"

#: Fixed 2026-12-07 before any result of this study was read. Instrument: the linear probe (method "lp", the paper's
#: 100 epochs, Adam 0.01, Table 5's batch sizes) at the models' own 224-px input, on Fashion-MNIST (MNIST moves
#: by 0.5-1.3 points under the same probe: digits barely need ImageNet features, issue #33), the first 2,000 test
#: images of a fixed stratified subset, 10 held-out training images per class for the temperature. Seeds: 5 at N=1
#: and N=10, 3 at N=50 (the feature pass at 224 px is about 19 images a second on one core of the AVX-512 Xeon,
#: so each model's ~4,800 images cost about 4 core-minutes). Upstream agreement at 224 px from docs/models.md
#: (2026-12-03, 256 crops of three held-out photographs); None where it was not measured (left out of the slope).
DESIGN: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "method": "lp",
    "seeds": {1: 5, 10: 5, 50: 3},
    "max_test": 2000,
    "holdout": 10,
    "models": {
        "efficientnet_lite0/prune-30": {"family": "sparsity", "level": 30, "agreement": 82.81},
        "efficientnet_lite0/prune-50": {"family": "sparsity", "level": 50, "agreement": 31.64},
        POSITIVE: {"family": "sparsity", "level": 70, "agreement": 0.0},
        "efficientnet_lite0/int8-tflite": {"family": "quantization", "level": 8, "agreement": 95.7},
        "efficientnet_lite0/w8a8": {"family": "quantization", "level": 8, "agreement": None},
        "efficientnet_lite0/w4a4": {"family": "quantization", "level": 4, "agreement": 2.34},
        # last: it shares dense's features (same weights), which a worker beside dense would compute a second time
        NULL: {"family": "null", "level": 0, "agreement": 100.0},
    },
}


#: Stage 2, fixed 2026-12-07 before any of its results: calibration where the paper measures it needs full data,
#: 60,000 images a model at 224 px (about 50 core-minutes each here), which this session cannot afford. The largest
#: budget it can: N=500 per class (5,000 images), one N-shot sample (sample_seed 0) and three head seeds, for dense,
#: one sparse model, Google's int8 model and the null. Its intervals count the head's seed and the test set, not
#: which 5,000 images were drawn.
LARGE: dict[str, Any] = {"shots": 500, "seeds": 3, "sample_seed": 0,
                         "models": (DENSE, "efficientnet_lite0/prune-50", "efficientnet_lite0/int8-tflite", NULL)}

#: Stage 3, fixed 2026-12-07 (session 3) before any of its runs: calibration at the largest budget the rest of that
#: session could buy, N=2,000 per class (20,000 images, a third of the full set; about 18 core-minutes of features a
#: model here), one N-shot sample (sample_seed 0) and three head seeds, for dense and `prune-50` (the sparse model:
#: the paper's claim is that sparsity hurts calibration) and the null (it shares dense's cached features). Like stage
#: 2 it has no positive control: a measurement, not a verdict.
LARGEST: dict[str, Any] = {"shots": 2000, "seeds": 3, "sample_seed": 0,
                           "models": (DENSE, "efficientnet_lite0/prune-50", NULL)}

#: Stage 4, fixed 2026-12-08 before any of its runs: the paper's calibration claim where the paper measures it, full
#: data (all 60,000 Fashion-MNIST training images but the 10 held out per class for the temperature: n_shots None),
#: three head seeds on one held-out draw (sample_seed 0), for dense, `prune-50` and the null. A feature pass is about
#: 35-55 core-minutes a model at 224 px here, so dense and prune-50 run side by side and the null (dense's features,
#: cached) after them. No positive control (no compressed model is known to hurt calibration): a measurement, not a
#: verdict. Its records go to their own tables (``FULL_DOCS``) so the stage 1-3 tables are never rebuilt without
#: their records.
FULL: dict[str, Any] = {"shots": None, "seeds": 3, "sample_seed": 0,
                        "models": (DENSE, "efficientnet_lite0/prune-50", NULL)}
FULL_DOCS = DOCS / "full-data"


def specs(stage: int | None = None) -> list[RunSpec]:
    """Every run of the design (stage 1, 2, 3, 4 or all), dense first (each model's runs together, so its features are
    computed once)."""
    out = []
    if stage in (None, 1):
        for model in (DENSE, *DESIGN["models"]):
            for shots, seeds in DESIGN["seeds"].items():
                out += [RunSpec(model, DESIGN["dataset"], method=DESIGN["method"], n_shots=shots, seed=seed,
                                eval_every=100, max_test=DESIGN["max_test"], holdout=DESIGN["holdout"])
                        for seed in range(seeds)]
    if stage in (None, 2):
        out += [RunSpec(model, DESIGN["dataset"], method=DESIGN["method"], n_shots=LARGE["shots"], seed=seed,
                        sample_seed=LARGE["sample_seed"], eval_every=100, max_test=DESIGN["max_test"],
                        holdout=DESIGN["holdout"])
                for model in LARGE["models"] for seed in range(LARGE["seeds"])]
    if stage in (None, 3):
        out += [RunSpec(model, DESIGN["dataset"], method=DESIGN["method"], n_shots=LARGEST["shots"], seed=seed,
                        sample_seed=LARGEST["sample_seed"], eval_every=100, max_test=DESIGN["max_test"],
                        holdout=DESIGN["holdout"])
                for model in LARGEST["models"] for seed in range(LARGEST["seeds"])]
    if stage in (None, 4):
        out += [RunSpec(model, DESIGN["dataset"], method=DESIGN["method"], n_shots=FULL["shots"], seed=seed,
                        sample_seed=FULL["sample_seed"], eval_every=100, max_test=DESIGN["max_test"],
                        holdout=DESIGN["holdout"])
                for model in FULL["models"] for seed in range(FULL["seeds"])]
    return out


def run(output: Path, runner: str = "processes", stage: int | None = None) -> int:
    """Make every run of the design not yet in ``output`` (one model per worker at a time: features are shared)."""
    from ..running.sweep import run_grid

    store = ResultStore(output)
    for docs in (DOCS, FULL_DOCS):  # what earlier sessions made, from the committed archive
        published.restore(output, docs)
    todo = specs(stage)
    if runner == "processes":  # one worker per model: both workers never compute the same model's features
        import os
        from concurrent.futures import ProcessPoolExecutor

        models = list(dict.fromkeys(s.model for s in todo))
        with ProcessPoolExecutor(max_workers=int(os.environ.get("VPCOST_WORKERS", "2"))) as pool:
            ran = sum(pool.map(_run_model, [str(output)] * len(models), models, [stage] * len(models)))
    else:
        ran = 0
    # then, serially, whatever the workers left (a failed run is retried once here, its error raised)
    return ran + run_grid(todo, store, runner="serial", progress=True).ran


def _run_model(output: str, model: str, stage: int | None = None) -> int:
    from ..running.sweep import run_grid

    mine = [s for s in specs(stage) if s.model == model]
    return run_grid(mine, ResultStore(output), runner="serial", progress=False, on_error="record").ran


def _levels() -> pd.DataFrame:
    rows = [{"model": DENSE, "family": "dense", "level": 0, "agreement": 100.0}]
    rows += [{"model": m, **v} for m, v in DESIGN["models"].items()]
    frame = pd.DataFrame(rows)
    frame["function_lost"] = 100.0 - frame["agreement"]
    return frame


def _stages(full: bool) -> tuple[int, ...]:
    return (4,) if full else (1, 2, 3)


def _records(output: Path, full: bool = False, docs: Path | None = None) -> list[dict]:
    """The records of stages 1-3 (or of stage 4 when ``full``), from ``output`` or the committed archive under
    ``docs`` (default: the stages' own folder), each file read once."""
    wanted = {s.run_id for stage in _stages(full) for s in specs(stage)}
    return published.records(output, (FULL_DOCS if full else DOCS) if docs is None else docs, wanted)


def gap_tables(output: Path, records: list[dict] | None = None,
               runs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-cell gaps for acc / ece / ece after temperature scaling, per-N slopes) from the study's records in
    ``output`` (``records``: already read by ``_records``; ``runs``: their ``ResultStore.table``, already built)."""
    records = _records(output) if records is None else records
    runs = ResultStore(output).table(records) if runs is None else runs
    predictions = predictions_of(records)
    families = {"lite0": (DENSE, list(DESIGN["models"]))}
    gaps = gaps_by_metric(runs, families, DESIGN["method"], predictions)
    gaps = gaps.merge(_levels().drop(columns="family"), on="model", how="left")
    return gaps, slopes(runs)


def slopes(runs: pd.DataFrame) -> pd.DataFrame:
    """Per N and metric: the slope of the gaps against the function lost (points of gap per 10 points of agreement
    lost), and against sparsity for the one-shot magnitude family (per 10 % sparsity).

    Each seed's gaps get their own least-squares line (the models of one seed share its sample, batches and head
    initialisation: a paired design), and the slope is the mean of the per-seed slopes with a t-interval over seeds
    (k - 1 degrees of freedom, as ``intervals.t_interval``). The test set's sampling noise, counted in each cell's
    interval, is not in the slope's."""
    levels = _levels().set_index("model")
    rows = []
    for (shots, metric), axis in [((n, m), a) for n in DESIGN["seeds"] for m in ("acc", "ece", "ece_temp_scaled")
                                  for a in ("function_lost", "sparsity")]:
        if metric not in runs:
            continue
        sub = runs[runs["n_shots"] == shots]
        wide = sub.pivot_table(index="seed", columns="model", values=metric, aggfunc="mean")
        if DENSE not in wide:
            continue
        scale = 1.0 if metric == "acc" else 100.0  # ECE in points, as the gap tables
        gaps = (wide[[DENSE]].values - wide.drop(columns=[DENSE]).values) * scale
        gaps = pd.DataFrame(gaps, index=wide.index, columns=wide.drop(columns=[DENSE]).columns)
        if axis == "function_lost":
            keep = [m for m in gaps if m != NULL and not math.isnan(levels.loc[m, "function_lost"])]
            x = levels.loc[keep, "function_lost"].to_numpy() / 10.0
        else:
            keep = [m for m in gaps if levels.loc[m, "family"] == "sparsity"]
            x = levels.loc[keep, "level"].to_numpy() / 10.0
        g = gaps[keep].dropna()
        if len(keep) < 3 or len(g) < 2:  # a slope through two models says nothing about a dose-response
            continue
        per_seed = [_slope(x, row) for row in g.to_numpy()]  # paired: each seed's own dose-response
        fit, low, high = t_interval(per_seed)
        rows.append({"shots": shots, "metric": metric, "axis": axis, "models": len(keep), "seeds": len(g),
                     "slope_per_10": float(fit), "low": float(low), "high": float(high),
                     "verdict": "above 0" if low > 0 else "below 0" if high < 0 else "covers 0"})
    return pd.DataFrame(rows)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def controls(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per N: did the null give gap 0 (interval covering 0) and was the positive control detected (accuracy gap
    above 0)? Without a detected positive control the cell's verdicts are withheld."""
    acc = gaps[gaps["metric"] == "acc"]
    rows = []
    for shots, part in acc.groupby("shots"):
        null = part[part["model"] == NULL]
        pos = part[part["model"] == POSITIVE]
        rows.append({"shots": shots,
                     "null_gap": float(null["gap"].iloc[0]) if len(null) else math.nan,
                     "null_covers_0": bool(len(null) and null["gap_low"].iloc[0] <= 0 <= null["gap_high"].iloc[0]),
                     "positive_gap": float(pos["gap"].iloc[0]) if len(pos) else math.nan,
                     "positive_low": float(pos["gap_low"].iloc[0]) if len(pos) else math.nan,
                     "positive_detected": bool(len(pos) and pos["gap_low"].iloc[0] > 0)})
    return pd.DataFrame(rows)


def write(output: Path, docs: Path | None = None, full: bool = False) -> dict[str, pd.DataFrame]:
    """The per-run CSV, the gap, slope and control tables (CSV) and the figure, under ``docs`` (default ``DOCS``,
    or ``FULL_DOCS`` for stage 4's full-data tables when ``full``)."""
    docs = (FULL_DOCS if full else DOCS) if docs is None else docs
    records = _records(output, full, docs)
    published.check_complete(records, docs, "python -m vpcost_utils.studies.dose_study run")
    docs.mkdir(parents=True, exist_ok=True)
    runs = ResultStore(output).table(records)
    keep = ["run_id", "model", "dataset", "method", "n_shots", "seed", "holdout", "acc", "ece", "wall_time_s",
            "threads", "arithmetic", "cpu_model", "git_commit"]
    runs[keep].sort_values(["model", "n_shots", "seed"]).to_csv(docs / "runs.csv", index=False)
    published.archive(records, docs)
    gaps, slope = gap_tables(output, records, runs)
    ctrl = controls(gaps)
    gaps.to_csv(docs / "gaps.csv", index=False)
    slope.to_csv(docs / "slopes.csv", index=False)
    ctrl.to_csv(docs / "controls.csv", index=False)
    if not full:  # stage 4 is one budget with no positive control: its tables are the result, not a curve
        figure(gaps, ctrl).savefig(docs / "dose_response.png", dpi=120, bbox_inches="tight")
    return {"runs": runs, "gaps": gaps, "slopes": slope, "controls": ctrl}


def figure(gaps: pd.DataFrame, ctrl: pd.DataFrame):
    """Gap against function lost, one panel per metric, one line per N, intervals as bars; the controls marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("acc", "accuracy gap (points)"), ("ece", "ECE gap (x100)"), ("ece_temp_scaled", "ECE gap after T")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, label) in zip(axes, metrics, strict=True):
        part = gaps[(gaps["metric"] == metric) & gaps["function_lost"].notna()]
        for k, (shots, cell) in enumerate(part.groupby("shots")):
            cell = cell.sort_values("function_lost")
            x = cell["function_lost"] + (k - 1) * 1.2
            ax.errorbar(x, cell["gap"], yerr=[cell["gap"] - cell["gap_low"], cell["gap_high"] - cell["gap"]],
                        marker="o", capsize=3, label=f"N={shots}")
        for _, row in part.drop_duplicates("model").iterrows():
            ax.annotate(row["model"].split("/")[1], (row["function_lost"], ax.get_ylim()[0]), fontsize=7,
                        rotation=90, va="bottom", alpha=0.6)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("upstream function lost (100 - top-1 agreement with dense, %)")
        ax.set_ylabel(f"dense minus compressed, {label}")
        ax.legend(fontsize=8)
    detected = ", ".join(f"N={r.shots}: {'yes' if r.positive_detected else 'NO'}" for r in ctrl.itertuples())
    fig.suptitle("Linear probe, Lite0 -> Fashion-MNIST, 224 px: transfer gap against upstream damage "
                 f"(positive control prune-70 detected: {detected})", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "table", "design"))
    parser.add_argument("--output", type=Path, default=Path("outputs/mini/dose-study"))
    parser.add_argument("--runner", default="processes", choices=("processes", "serial"))
    parser.add_argument("--stage", type=int, choices=(1, 2, 3, 4), default=None,
                        help="run one stage only (default all); with `table`, 4 writes the full-data tables "
                             "(docs/dose-study/full-data/), anything else stages 1-3's")
    args = parser.parse_args(argv)
    if args.action == "design":
        print(json.dumps({**DESIGN, "runs": len(specs())}, indent=1, default=str))
    elif args.action == "run":
        print(f"{run(args.output, args.runner, args.stage)} runs made")
    else:
        out = write(args.output, full=args.stage == 4)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(out["controls"], out["slopes"], sep="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
