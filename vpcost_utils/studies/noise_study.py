"""Where a mini cell's seed noise comes from: ``python -m vpcost_utils.studies.noise_study --phase core``.

The paired dense-minus-compressed gap of one cell (model pair, dataset, N) varies from seed to seed
for three reasons that the spec can now vary one at a time:

- ``sample``: which N images per class are drawn (``RunSpec.sample_seed``; the optimisation seed fixed).
  This is the variance of the data budget itself, the paper's subject;
- ``opt``: the batch order (``RunSpec.seed`` with the sample fixed); ILM-VP has no other randomness (the
  prompt starts at 0, the mapping is a vote);
- ``arith``: the float summation order alone (same spec on 2 threads per run instead of 1).

Two more designs probe the protocol: ``flm`` (the label mapping fixed once before training instead of
ILM's vote every epoch: is the late re-mapping the noise?) and ``bf16`` (bf16 autocast: does the 2-3x
faster arithmetic change the result?).

``both`` is the ordinary design (one seed draws both). Each design runs at several training lengths;
``analyse`` decomposes the paired gap's variance per design and length. Records go to
``<output>/runs`` (``<output>/runs-threads2`` for ``arith``), resumable like every sweep.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunSpec

DENSE = "efficientnet_lite0/dense"
COMPRESSED = ("efficientnet_lite0/prune-50", "efficientnet_lite0/int8-tflite")
CELL = {"dataset": "mnist", "n_shots": 10, "canvas": 128, "max_test": 2000, "method": "ilm"}
DESIGNS = ("both", "sample", "opt", "arith", "bf16", "flm")


def design_specs(design: str, models: Sequence[str], epochs: int, reps: int, **cell) -> list[RunSpec]:
    """The runs of one design: ``reps`` variations of the one source of noise the design names."""
    cell = {**CELL, **cell, "epochs": epochs, "eval_every": epochs}
    out = []
    for model in models:
        for i in range(reps):
            if design in ("both", "arith"):
                out.append(RunSpec(model, seed=i, **cell))
            elif design == "bf16":
                out.append(RunSpec(model, seed=i, precision="bf16", **cell))
            elif design == "flm":
                out.append(RunSpec(model, seed=i, **{**cell, "method": "flm"}))
            elif design == "sample":
                out.append(RunSpec(model, seed=0, sample_seed=i, **cell))
            elif design == "opt":
                out.append(RunSpec(model, seed=i, sample_seed=0, **cell))
            else:
                raise ValueError(f"unknown design {design!r}; known: {DESIGNS}")
    return out


#: What each phase runs, in the order the 2-core budget affords them: (design, models, epochs, reps).
PHASES: dict[str, list[tuple[str, tuple[str, ...], int, int]]] = {
    "core": [("both", (DENSE, *COMPRESSED), 64, 6), ("both", (DENSE, *COMPRESSED), 16, 6)],
    "split": [("sample", (DENSE, COMPRESSED[0]), 64, 3), ("opt", (DENSE, COMPRESSED[0]), 64, 3)],
    "flm": [("flm", (DENSE, COMPRESSED[0]), 64, 3)],
    "bf16": [("bf16", (DENSE, COMPRESSED[0]), 64, 3)],
    "arith16": [("arith", (DENSE, COMPRESSED[0]), 16, 3)],
    "split16": [("sample", (DENSE, COMPRESSED[0]), 16, 3), ("opt", (DENSE, COMPRESSED[0]), 16, 3)],
    "arith": [("arith", (DENSE, COMPRESSED[0]), 64, 2)],
}


def run_phase(phase: str, output: Path, runner: str = "processes") -> None:
    from ..running.store import ResultStore
    from ..running.sweep import run_grid

    for design, models, epochs, reps in PHASES[phase]:
        specs = design_specs(design, models, epochs, reps)
        folder = "runs-threads2" if design == "arith" else "runs"
        if design == "arith":  # the only change: two threads per run (one worker, so the threads are real)
            os.environ["VPCOST_RUN_THREADS"], os.environ["VPCOST_WORKERS"] = "2", "1"
        try:
            result = run_grid(specs, ResultStore(output / folder), runner=runner, on_error="record")
        finally:
            if design == "arith":
                os.environ.pop("VPCOST_RUN_THREADS"), os.environ.pop("VPCOST_WORKERS")
        print(f"{phase}/{design} E={epochs}: {result}", flush=True)


def _table(folder: Path) -> pd.DataFrame:
    """The store's run table (``ResultStore.table``) with the names this study reads, and each run's record."""
    from ..running.store import ResultStore

    store = ResultStore(folder)
    runs = store.table() if folder.exists() else pd.DataFrame()
    if runs.empty:
        return runs
    records = {r["run_id"]: r for r in store.records()}
    return runs.assign(precision=runs["precision"].fillna("fp32"), wall_s=runs["wall_time_s"],
                       record=runs["run_id"].map(records))


def _design_rows(runs: pd.DataFrame, design: str) -> pd.DataFrame:
    if design == "flm":
        part = runs[(runs["method"] == "flm") & (runs["precision"] == "fp32") & runs["sample_seed"].isna()]
        return part.assign(rep=part["seed"])
    runs = runs[runs["method"] == "ilm"]
    fp32 = runs[runs["precision"] == "fp32"]
    if design == "both":
        return fp32[fp32["sample_seed"].isna()].assign(rep=lambda d: d["seed"])
    if design == "sample":
        part = fp32[(fp32["seed"] == 0)]
        return part.assign(rep=part["sample_seed"].fillna(0).astype(int))
    if design == "opt":
        part = fp32[(fp32["sample_seed"] == 0) | ((fp32["seed"] == 0) & fp32["sample_seed"].isna())]
        return part.assign(rep=part["seed"])
    if design == "bf16":
        part = runs[(runs["precision"] == "bf16") & runs["sample_seed"].isna()]
        return part.assign(rep=part["seed"])
    raise ValueError(design)


def paired(runs: pd.DataFrame, design: str, compressed: str, epochs: int, metric: str = "acc") -> pd.DataFrame:
    """Per repetition of a design: dense and compressed ``metric`` and their gap (and the run ids)."""
    part = _design_rows(runs[runs["epochs"] == epochs], design)
    d = part[part["model"] == DENSE].set_index("rep")
    c = part[part["model"] == compressed].set_index("rep")
    reps = sorted(set(d.index) & set(c.index))
    dense, comp = d.loc[reps, metric].to_numpy(), c.loc[reps, metric].to_numpy()
    return pd.DataFrame({"rep": reps, "dense": dense, "compressed": comp, "gap": dense - comp,
                         "dense_id": d.loc[reps, "run_id"].to_numpy(),
                         "compressed_id": c.loc[reps, "run_id"].to_numpy()})


def decomposition(output: Path) -> pd.DataFrame:
    """Per compressed model, training length and design: the paired gap's mean and sd over repetitions, and
    (``arith``) the sd that the summation order alone gives, from 1-thread / 2-thread twins of each spec."""
    from ..stats import intervals

    runs, twins = _table(output / "runs"), _table(output / "runs-threads2")
    preds = intervals.predictions_of([r for r in runs["record"]]) if not runs.empty else {}
    rows = []
    for compressed in COMPRESSED:
        for epochs in sorted(runs["epochs"].unique()) if not runs.empty else []:
            for design in ("both", "sample", "opt", "flm", "bf16"):
                g = paired(runs, design, compressed, epochs)
                if len(g) < 2:
                    continue
                test_var = intervals.test_set_variance([preds[i] for i in g["dense_id"]],
                                                       [preds[i] for i in g["compressed_id"]], "acc")
                rows.append({"compressed": compressed.split("/")[-1], "epochs": int(epochs), "design": design,
                             "reps": len(g), "dense_acc": g["dense"].mean(), "compressed_acc": g["compressed"].mean(),
                             "gap": g["gap"].mean(), "gap_sd": g["gap"].std(ddof=1), "test_se": test_var ** 0.5})
            if not twins.empty:
                one = paired(runs, "both", compressed, epochs).set_index("rep")
                two = paired(twins, "both", compressed, epochs).set_index("rep")
                reps = sorted(set(one.index) & set(two.index))
                if reps:
                    diff = (two.loc[reps, "gap"] - one.loc[reps, "gap"]).to_numpy()
                    rows.append({"compressed": compressed.split("/")[-1], "epochs": int(epochs), "design": "arith",
                                 "reps": len(reps), "dense_acc": two.loc[reps, "dense"].mean(),
                                 "compressed_acc": two.loc[reps, "compressed"].mean(), "gap": two.loc[reps, "gap"]
                                 .mean(), "gap_sd": float(np.sqrt(np.mean(diff ** 2) / 2)), "test_se": np.nan})
    table = pd.DataFrame(rows)
    if not table.empty:  # the sd's own 95 % interval: from 3-6 repetitions it is wide
        bounds = [sd_interval(r.gap_sd, r.reps) for r in table.itertuples()]
        table["sd_low"], table["sd_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return table


def precision_effect(output: Path) -> pd.DataFrame:
    """bf16 minus fp32, paired by spec (same model and seed): accuracy and ECE per run."""
    runs = _table(output / "runs")
    if runs.empty:
        return pd.DataFrame()
    bf = runs[runs["precision"] == "bf16"]
    rows = []
    for r in bf.itertuples():
        twin = runs[(runs["precision"] == "fp32") & (runs["method"] == r.method) & (runs["model"] == r.model)
                    & (runs["seed"] == r.seed)
                    & (runs["epochs"] == r.epochs) & runs["sample_seed"].isna()]
        if len(twin):
            t = twin.iloc[0]
            rows.append({"model": r.model.split("/")[-1], "epochs": r.epochs, "seed": r.seed, "fp32_acc": t.acc,
                         "bf16_acc": r.acc, "acc_diff": r.acc - t.acc, "ece_diff": r.ece - t.ece,
                         "speed_up": t.wall_s / r.wall_s})
    return pd.DataFrame(rows)


def convergence_summary(output: Path) -> pd.DataFrame:
    """Per model and training length: how many runs settled, the loss change of the last tenth, mapping flips."""
    runs = _table(output / "runs")
    runs = runs[(runs["precision"] == "fp32")] if not runs.empty else runs
    return (runs.groupby(["model", "method", "epochs"]).agg(runs=("acc", "size"), acc=("acc", "mean"),
                                                  settled=("settled", "mean"),
                                                  loss_change=("loss_change", lambda x: np.mean(np.abs(x))),
                                                  mapping_changes=("mapping_changes", "mean"),
                                                  wall_s=("wall_s", "mean")).reset_index()
            if not runs.empty else runs)


def sd_interval(sd: float, reps: int, level: float = 0.95) -> tuple[float, float]:
    """The chi-square interval of a normal sample's sd from ``reps`` values (an sd from 3-6 values is itself
    uncertain by a factor of 2 or more)."""
    from scipy import stats

    df = reps - 1
    return (sd * float(np.sqrt(df / stats.chi2.ppf(0.5 + level / 2, df))),
            sd * float(np.sqrt(df / stats.chi2.ppf(0.5 - level / 2, df))))


def figure(table: pd.DataFrame):
    """The paired gap's sd per design against training length (95 % chi-square bars), one panel per model."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    models = list(dict.fromkeys(table["compressed"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False)
    designs = (("both", "o"), ("sample", "s"), ("opt", "^"), ("arith", "x"), ("flm", "v"), ("bf16", "d"))
    for ax, model in zip(axes[0], models, strict=True):
        part = table[table["compressed"] == model]
        for k, (design, marker) in enumerate(designs):
            rows = part[part["design"] == design].sort_values("epochs")
            if rows.empty:
                continue
            x = rows["epochs"].to_numpy(float) * 2 ** (0.04 * (k - 2))  # a small offset keeps the bars apart
            bounds = np.array([sd_interval(r.gap_sd, r.reps) for r in rows.itertuples()]).T
            y = rows["gap_sd"].to_numpy(float)
            ax.errorbar(x, y, yerr=[y - bounds[0], bounds[1] - y], marker=marker, capsize=3,
                        label=f"{design} ({rows['reps'].min()}-{rows['reps'].max()} reps)")
        test = part[part["design"] == "both"].sort_values("epochs")
        ax.plot(test["epochs"], test["test_se"], ls=":", c="grey", label="test-set se of the gap")
        ticks = sorted(part["epochs"].unique())
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set(title=f"dense - {model}, MNIST N=10", xlabel="epochs", ylabel="sd of the paired gap (points)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def analyse(output: Path, figure_path: Path | None = None) -> str:
    """The Markdown tables docs/mini-study.md quotes (and the figure, if a path is given)."""
    from ..nb.tables import to_markdown

    table = decomposition(output)
    parts = ["Paired gap (dense minus compressed accuracy, points) by design and training length:",
             to_markdown(table.round(2)) if not table.empty else "_none_",
             "bf16 autocast minus fp32, same spec:", to_markdown(precision_effect(output).round(3)) or "_none_",
             "Convergence (fp32 runs):", to_markdown(convergence_summary(output).round(3)) or "_none_"]
    if figure_path is not None and not table.empty:
        figure_path.parent.mkdir(parents=True, exist_ok=True)
        figure(table).savefig(figure_path, dpi=130, bbox_inches="tight")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", nargs="*", choices=sorted(PHASES), default=["core"])
    parser.add_argument("--output", default="outputs/noise-study")
    parser.add_argument("--runner", default="processes", choices=("serial", "processes"))
    parser.add_argument("--analyse", action="store_true", help="print the tables from the records (runs nothing "
                        "unless --phase is given too)")
    parser.add_argument("--figure", default=None, help="with --analyse: where to save the figure")
    args = parser.parse_args(argv)
    if not args.analyse:
        for phase in args.phase:
            run_phase(phase, Path(args.output), args.runner)
    else:
        print(analyse(Path(args.output), Path(args.figure) if args.figure else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
