"""Converged visual prompts on the models' own canvas: the paper's protocol on the cells that matter most.

The dose-response study (``dose_study``) measures compression's cost with a linear probe. This study measures it
with the method the paper measures, ILM-VP, at the paper's protocol (100 epochs, Adam 0.01, the multistep schedule,
Table 5's batch size) on Lite0's own 224-px canvas: dense, one-shot ``prune-50`` (the sparse model of the LP study's
resolved gap) and the positive control ``prune-70`` (0 % upstream agreement), then Google's int8 model where time
allows. Its runs use the LP study's N-shot samples, held-out images and test images (same spec but the method), so
each seed's VP gap can be set beside its LP gap.

The same runs give the convergence evidence: the test accuracy at epochs 16, 32, 48, 64, 80, 96 and 100 of the
100-epoch schedule (``eval_every=16``) and the settled flag. Accuracy at epoch 16 of a 100-epoch schedule is not a
16-epoch run (whose learning rate drops at epochs 8 and 11), so the curve says whether 100 epochs have settled, not
what a shorter protocol would reach; the 16-epoch mini protocol's own numbers are in ``docs/verdict-study/``.

``python -m vpcost_utils.studies.converged_vp run`` makes the runs (a rerun skips what is done; a killed run resumes
from its mid-run checkpoint), ``table`` writes the per-run CSV, the gaps, the convergence curve and the VP-beside-LP
table under ``docs/converged-vp/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import RunSpec
from ..running.store import ResultStore
from ..stats.intervals import gaps_by_metric, predictions_of, t_interval
from . import published

DOCS = Path(__file__).resolve().parents[2] / "docs" / "converged-vp"
DENSE, POSITIVE = "efficientnet_lite0/dense", "efficientnet_lite0/prune-70"

#: Fixed 2026-12-07 (session 3, before any run of it): ILM at the paper's 100 epochs on Lite0's 224 px, Fashion-
#: MNIST N=10, the LP study's max_test 2000 and holdout 10, the default avx2 pin in fp32 (bf16 autocast under the
#: native arithmetic measured 1.3x faster here, too little to be worth a second arithmetic). Cost measured before
#: the design: about 10 s an epoch on one core of the Xeon, so 100 epochs and seven test passes about 20 minutes a
#: run; two workers make about six runs an hour. Stage 1: three seeds of dense, prune-50 and prune-70, interleaved by
#: seed so that whatever the session finishes is a balanced, paired set. Stage 2 (if time is left): int8-tflite.
#: No null run: dense-copy has dense's weights, so its VP run would be dense's, bit for bit (the LP study's null gap
#: was exactly 0), and it would cost a third of a stage.
DESIGN: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "method": "ilm",
    "shots": 10,
    "epochs": 100,
    "eval_every": 16,
    "max_test": 2000,
    "holdout": 10,
    "stages": {1: ((DENSE, POSITIVE, "efficientnet_lite0/prune-50"), 3),
               2: (("efficientnet_lite0/int8-tflite",), 3)},
}
LP_RUNS = Path(__file__).resolve().parents[2] / "docs" / "dose-study" / "runs.csv"


def specs(stage: int | None = None) -> list[RunSpec]:
    """The design's runs in the order they are made: by stage, then by seed, then by model."""
    out = []
    for number, (models, seeds) in DESIGN["stages"].items():
        if stage not in (None, number):
            continue
        out += [RunSpec(model, DESIGN["dataset"], method=DESIGN["method"], n_shots=DESIGN["shots"], seed=seed,
                        epochs=DESIGN["epochs"], eval_every=DESIGN["eval_every"], max_test=DESIGN["max_test"],
                        holdout=DESIGN["holdout"])
                for seed in range(seeds) for model in models]
    return out


def run(output: Path, stage: int | None = None, runner: str = "processes") -> int:
    """Make every run of the design not yet in ``output``."""
    from ..running.sweep import run_grid

    published.restore(output, DOCS)  # what earlier sessions made, from the committed archive
    return run_grid(specs(stage), ResultStore(output), runner=runner, progress=True, on_error="record").ran


def _records(output: Path, docs: Path = DOCS) -> list[dict]:
    """The design's records, from ``output`` or ``docs``'s committed archive (``published.records``)."""
    return published.records(output, docs, {s.run_id for s in specs()})


def convergence(records: list[dict]) -> pd.DataFrame:
    """Test accuracy at every evaluated epoch, one row per run and epoch, with the run's settled flag."""
    rows = []
    for record in records:
        curves = record["curves"]
        for epoch, acc in zip(curves["eval_epoch"], curves["test_acc"], strict=True):
            rows.append({"run_id": record["run_id"], "model": record["spec"]["model"], "seed": record["spec"]["seed"],
                         "epoch": epoch, "test_acc": acc, "settled": record["convergence"]["settled"]})
    return pd.DataFrame(rows)


def gaps(runs: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """Paired gaps (dense minus each model) in accuracy and ECE (x100, before and after temperature scaling), from
    ``write``'s run table (with its ``ece_temp_scaled`` column) and the records it was made from."""
    models = [m for m in dict.fromkeys(runs["model"]) if m != DENSE]
    return gaps_by_metric(runs, {"lite0": (DENSE, models)}, DESIGN["method"], predictions_of(records))


def beside_lp(runs: pd.DataFrame, lp_runs: pd.DataFrame) -> pd.DataFrame:
    """Per model: the VP and the LP accuracy gap on the same seeds (same samples and test images), each with its
    t-interval over those seeds, and the per-seed difference VP gap minus LP gap."""
    lp = lp_runs[(lp_runs["n_shots"] == DESIGN["shots"]) & (lp_runs["method"] == "lp")]
    vp_wide = runs.pivot_table(index="seed", columns="model", values="acc")
    lp_wide = lp.pivot_table(index="seed", columns="model", values="acc")
    rows = []
    for model in vp_wide.columns.drop(DENSE, errors="ignore"):
        seeds = [s for s in vp_wide.index if s in lp_wide.index and pd.notna(vp_wide.loc[s, model])
                 and pd.notna(vp_wide.loc[s, DENSE]) and model in lp_wide]
        if len(seeds) < 2:
            continue
        vp_gap = (vp_wide.loc[seeds, DENSE] - vp_wide.loc[seeds, model]).to_numpy()
        lp_gap = (lp_wide.loc[seeds, DENSE] - lp_wide.loc[seeds, model]).to_numpy()
        row: dict[str, Any] = {"model": model, "seeds": len(seeds)}
        for name, values in (("vp_gap", vp_gap), ("lp_gap", lp_gap), ("vp_minus_lp", vp_gap - lp_gap)):
            mean, low, high = t_interval(values)
            row.update({name: float(mean), f"{name}_low": float(low), f"{name}_high": float(high)})
        row["vp_dense"] = float(vp_wide.loc[seeds, DENSE].mean())
        row["lp_dense"] = float(lp_wide.loc[seeds, DENSE].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def write(output: Path, docs: Path = DOCS, lp_runs: Path = LP_RUNS) -> dict[str, pd.DataFrame]:
    """The per-run CSV, the gaps, the convergence curve, VP beside LP and the figure, under ``docs``."""
    records = _records(output, docs)
    published.check_complete(records, docs, "python -m vpcost_utils.studies.converged_vp run")
    docs.mkdir(parents=True, exist_ok=True)
    runs = ResultStore(output).table(records)
    runs["settled"] = [r["convergence"]["settled"] for r in records]
    keep = ["run_id", "model", "dataset", "method", "n_shots", "seed", "epochs", "holdout", "acc", "ece",
            "ece_temp_scaled", "settled", "wall_time_s", "threads", "arithmetic", "cpu_model", "git_commit"]
    runs[[c for c in keep if c in runs]].sort_values(["model", "seed"]).to_csv(docs / "runs.csv", index=False)
    published.archive(records, docs)
    out = {"runs": runs, "convergence": convergence(records)}
    out["convergence"].to_csv(docs / "convergence.csv", index=False)
    if (runs["model"] == DENSE).any() and runs["model"].nunique() > 1:
        out["gaps"] = gaps(runs, records)
        out["gaps"].to_csv(docs / "gaps.csv", index=False)
        if lp_runs.exists():
            out["beside_lp"] = beside_lp(runs, pd.read_csv(lp_runs))
            out["beside_lp"].to_csv(docs / "beside_lp.csv", index=False)
    figure(out["convergence"]).savefig(docs / "convergence.png", dpi=120, bbox_inches="tight")
    return out


INT8 = "efficientnet_lite0/int8-tflite"


def int8_cell(output: Path, docs: Path = DOCS, lp_runs: Path = LP_RUNS) -> pd.DataFrame:
    """Stage 2: Google's int8 model against dense, paired by seed, in accuracy and ECE (x100, before and after
    temperature scaling), beside the LP gap on the same seeds; written to ``docs/int8.csv``.

    Dense's side is its record where the store or the archive has one, else its published value in
    ``docs/runs.csv`` (stage 1's records were made on a machine that did not keep them; a rerun on the same
    arithmetic key reproduces them, which ``python -m vpcost_utils.studies.converged_vp run --stage 1`` checks).
    The first rows' interval is a t-interval over the seeds' paired differences: the test set's sampling noise is not
    counted (it needs both sides' per-image outcomes), so it is narrower than stage 1's by that term. Once dense has a
    record with per-image outcomes at every seed, rows "... (seeds and test set)" add stage 1's interval."""
    wanted = {s.run_id for s in specs(2)} | {s.run_id for s in specs(1) if s.model == DENSE}
    records = published.records(output, docs, wanted)
    table = ResultStore(output).table(records)
    dense = table[table["model"] == DENSE].set_index("seed")
    if (docs / "runs.csv").exists():  # published values for the seeds whose records are gone
        old = pd.read_csv(docs / "runs.csv")
        old = old[old["model"] == DENSE].set_index("seed")
        dense = pd.concat([dense, old.loc[old.index.difference(dense.index)]])
    int8 = table[table["model"] == INT8].set_index("seed")
    seeds = sorted(set(int8.index) & set(dense.index))
    rows = []
    for metric, scale in (("acc", 1.0), ("ece", 100.0), ("ece_temp_scaled", 100.0)):
        diffs = [scale * (float(dense.loc[s, metric]) - float(int8.loc[s, metric])) for s in seeds]
        mean, low, high = t_interval(diffs) if len(diffs) > 1 else (float("nan"),) * 3
        rows.append({"model": INT8, "metric": metric, "seeds": len(seeds), "dense_mean": scale * dense.loc[seeds,
                     metric].astype(float).mean(), "model_mean": scale * int8.loc[seeds, metric].astype(float).mean(),
                     "gap": mean, "gap_low": low, "gap_high": high, "per_seed": " ".join(f"{d:+.2f}" for d in diffs),
                     "interval": "t over seeds (test-set noise not counted)"})
    if lp_runs.exists() and seeds:
        lp = pd.read_csv(lp_runs)
        lp = lp[(lp["n_shots"] == DESIGN["shots"]) & (lp["method"] == "lp")].pivot_table(index="seed",
                                                                                          columns="model", values="acc")
        lp_gap = [float(lp.loc[s, DENSE] - lp.loc[s, INT8]) for s in seeds]
        vp_gap = [float(dense.loc[s, "acc"]) - float(int8.loc[s, "acc"]) for s in seeds]
        for name, values in (("lp acc", lp_gap), ("vp minus lp acc", [v - g for v, g in zip(vp_gap, lp_gap,
                                                                                          strict=True)])):
            mean, low, high = t_interval(values) if len(values) > 1 else (float("nan"),) * 3
            rows.append({"model": INT8, "metric": name, "seeds": len(seeds), "gap": mean, "gap_low": low,
                         "gap_high": high, "per_seed": " ".join(f"{d:+.2f}" for d in values),
                         "interval": "t over seeds"})
    with_outcomes = {r["spec"]["seed"] for r in records if r["spec"]["model"] == DENSE and r.get("test_predictions")}
    if len(seeds) > 1 and set(seeds) <= with_outcomes:  # both sides' per-image outcomes: stage 1's interval
        pair = table[table["model"].isin([DENSE, INT8]) & table["seed"].isin(seeds)]
        for _, g in gaps(pair, records).iterrows():
            rows.append({"model": INT8, "metric": f"{g['metric']} (seeds and test set)", "seeds": g["pairs"],
                         "dense_mean": g["dense_mean"], "model_mean": g["model_mean"], "gap": g["gap"],
                         "gap_low": g["gap_low"], "gap_high": g["gap_high"], "per_seed": "",
                         "interval": f"t over seeds and the test set (as stage 1); smallest detectable gap "
                                     f"{g['mde']:.2f}"})
    out = pd.DataFrame(rows)
    docs.mkdir(parents=True, exist_ok=True)
    out.to_csv(docs / "int8.csv", index=False)
    mine = [r for r in records if r["spec"]["model"] in (INT8, DENSE)]  # dense's remade records too
    keep = ["run_id", "model", "seed", "acc", "ece", "ece_temp_scaled", "settled", "wall_time_s", "arithmetic",
            "cpu_model", "git_commit"]
    table[table["model"] == INT8][keep].sort_values("seed").to_csv(docs / "int8_runs.csv", index=False)
    published.archive(mine, docs)
    return out


def figure(curve: pd.DataFrame):
    """Test accuracy against epoch of the 100-epoch schedule, one line per run, coloured by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (model, part) in enumerate(curve.groupby("model")):
        for j, (_, run_curve) in enumerate(part.groupby("seed")):
            ax.plot(run_curve["epoch"], run_curve["test_acc"], color=f"C{k}", alpha=0.8, marker="o", ms=3,
                    label=model.split("/")[1] if j == 0 else None)
    ax.set_xlabel("epoch of the paper's 100-epoch schedule")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("ILM-VP, Lite0 -> Fashion-MNIST N=10, 224 px: does the prompt settle?", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "table"))
    parser.add_argument("--output", type=Path, default=Path("outputs/mini/converged-vp"))
    parser.add_argument("--stage", type=int, choices=(1, 2), default=None,
                        help="one stage only (default both); `table --stage 2`: the int8 cell alone (int8.csv)")
    parser.add_argument("--runner", default="processes", choices=("processes", "serial"))
    args = parser.parse_args(argv)
    if args.action == "run":
        print(f"ran {run(args.output, args.stage, args.runner)} runs")
    elif args.stage == 2:
        print(int8_cell(args.output).round(3).to_string(index=False))
    else:
        for name, frame in write(args.output).items():
            if name != "runs":
                print(name, frame.round(3).to_string(index=False), sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
