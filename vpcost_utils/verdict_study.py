"""The mini profile's N=10 cells with as many seeds as a wall-clock budget buys, and their verdicts.

``python -m vpcost_utils.verdict_study --hours 2.5`` runs the mini profile's own N=10 runs (dense
EfficientNet-Lite0 against every compressed model of its sparse and quantization sections, on MNIST and
Fashion-MNIST; the same specs and run ids as ``make reproduce PROFILE=mini``) seed by seed, all cells
together: seed block 0-1 of every cell, then 2-3, and so on, until the next block would not finish
inside the budget or ``--max-seeds`` is reached. ``--analyse`` reads the records and gives every
cell's paired gap with its 95 % interval (seeds and the test set counted, ``intervals.paired_gaps``),
its verdict, the gap it could have detected, and what +-3 points would have cost.

Why not Stein's two stages (``report --target-halfwidth``): with a pilot of five seeds the rule's t has
4 degrees of freedom (2.78 against about 2.05 here), so at the seed noise measured on this cell (sd 7-11
points) it asks for 60-135 seeds per cell, beyond any CPU session; and a cell it refuses gets nothing.
A fixed design whose size is set by the clock is valid for the plain t-interval as long as the stopping
never looks at the results: the budget decides how many seed blocks start, and the analysis uses only
the seeds every cell has finished (the same count everywhere), so no cell stops because it looks good.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .config import RunSpec

SHOTS = 10
SECTIONS = ("sparse_transfer", "quantization")
BLOCK = 2  # seeds started together: both workers stay busy to the block's end


def families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The mini profile's families (family -> (dense, compressed models)) of the sections studied here."""
    from . import profiles

    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for section in SECTIONS:
        out.update(profiles.settings(section, "mini")["families"])
    return out


def specs(seeds: range) -> list[RunSpec]:
    """The mini profile's N=10 runs of ``seeds``, seed-major, each run once (the dense runs are shared)."""
    from . import grids, profiles

    seen: dict[str, RunSpec] = {}
    for section in SECTIONS:
        cfg = profiles.settings(section, "mini", seeds=tuple(seeds), shots=(SHOTS,))
        for spec in grids.section_specs(section, cfg):
            seen.setdefault(spec.run_id, spec)
    return sorted(seen.values(), key=lambda s: (s.seed, s.dataset, s.model))


def run(output: Path, hours: float, max_seeds: int, runner: str = "processes") -> int:
    """Run seed blocks until the budget or ``max_seeds``; returns the seeds every cell has finished."""
    from .store import ResultStore
    from .sweep import pending, run_grid

    store = ResultStore(output / "runs")
    start, spent = time.monotonic(), []
    for first in range(0, max_seeds, BLOCK):
        block = specs(range(first, min(first + BLOCK, max_seeds)))
        todo = pending(block, store)
        if not todo:
            continue
        elapsed = time.monotonic() - start
        guess = max(spent) if spent else 0.0  # the slowest block so far: stop early rather than overrun
        if elapsed + guess > hours * 3600:
            print(f"budget: {elapsed / 3600:.2f} h spent, the next block would need about {guess / 60:.0f} min more; "
                  f"stopping before seed {first}", flush=True)
            break
        began = time.monotonic()
        print(run_grid(todo, store, runner=runner, on_error="record"), flush=True)
        spent.append(time.monotonic() - began)
    return finished_seeds(store.table())


def finished_seeds(runs: pd.DataFrame) -> int:
    """The largest k such that every run of seeds 0..k-1 of every cell has a record."""
    if runs.empty:
        return 0
    have = set(runs["run_id"])
    k = 0
    while all(s.run_id in have for s in specs(range(k, k + 1))):
        k += 1
    return k


def table(output: Path, seeds: int | None = None) -> pd.DataFrame:
    """Per (dataset, compressed model): the paired gap over the first ``seeds`` seeds (default: all finished)."""
    from . import intervals
    from .store import ResultStore

    store = ResultStore(output / "runs")
    runs = store.table()
    k = finished_seeds(runs) if seeds is None else seeds
    wanted = {s.run_id for s in specs(range(k))}
    runs = runs[runs["run_id"].isin(wanted)]
    records = [r for r in store.records() if r["run_id"] in wanted]
    gaps = intervals.paired_gaps(runs, families(), "acc", predictions=intervals.predictions_of(records))
    noise = list(zip(gaps["seed_sd"], gaps["test_se"], strict=True))
    return gaps.assign(three_seed_halfwidth=[_resolvable(sd, 3, se)[0] for sd, se in noise],
                       seeds_for_3=[_cost(sd, se, 3.0) for sd, se in noise])


def runs_table(output: Path, seeds: int | None = None) -> pd.DataFrame:
    """One row per run behind ``table`` (its seeds): what docs keep, since the records' directory may not last."""
    from .store import ResultStore

    runs = ResultStore(output / "runs").table()
    k = finished_seeds(runs) if seeds is None else seeds
    runs = runs[runs["run_id"].isin({s.run_id for s in specs(range(k))})]
    columns = ["run_id", "dataset", "model", "seed", "n_shots", "epochs", "acc", "ece", "wall_time_s", "threads",
               "mapping_changes", "settled", "git_commit"]
    return runs[columns].sort_values(["seed", "dataset", "model"]).reset_index(drop=True)


def _resolvable(sd: float, seeds: int, test_se: float) -> tuple[float, float]:
    from .sequential import resolvable

    return resolvable(sd, seeds, 0.0 if pd.isna(test_se) else test_se)


def _cost(sd: float, test_se: float, halfwidth: float) -> int | None:
    """Seeds of a fixed design whose expected 95 % half-width is ``halfwidth`` at this sd."""
    for n in range(3, 2000):
        if _resolvable(sd, n, test_se)[0] <= halfwidth:
            return n
    return None


def running(output: Path) -> pd.DataFrame:
    """The interval of every cell after each finished seed count from 3 on (how the width falls with seeds)."""
    rows = []
    k = finished_seeds(_runs(output))
    for n in range(3, k + 1):
        part = table(output, n)
        rows.append(part.assign(seeds=n)[["seeds", "dataset", "model", "gap", "gap_low", "gap_high", "halfwidth"]])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _runs(output: Path) -> pd.DataFrame:
    from .store import ResultStore

    return ResultStore(output / "runs").table()


def figure(gaps: pd.DataFrame, trace: pd.DataFrame):
    """Left: every cell's gap and 95 % interval; right: the half-width against seeds."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.0), gridspec_kw={"width_ratios": [1.2, 1]})
    labels = [f"{r.dataset}\n{r.model.split('/')[-1]}" for r in gaps.itertuples()]
    y = range(len(gaps))
    left.errorbar(gaps["gap"], y, xerr=[gaps["gap"] - gaps["gap_low"], gaps["gap_high"] - gaps["gap"]], fmt="o",
                  capsize=3)
    left.axvline(0, c="grey", lw=0.8)
    left.set_yticks(list(y), labels, fontsize=7)
    left.set(xlabel="dense - compressed accuracy (points; > 0: compressed transfers worse)",
             title=f"N={SHOTS}, ILM-VP, {int(gaps['pairs'].min())} seeds, 95 % intervals")
    left.grid(alpha=0.3)
    for (dataset, model), part in trace.groupby(["dataset", "model"], sort=False):
        right.plot(part["seeds"], part["halfwidth"], marker=".", label=f"{dataset} {model.split('/')[-1]}")
    right.axhline(3, c="grey", ls="--", lw=0.8, label="+-3 points")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.set(xlabel="seeds", ylabel="95 % half-width (points)", title="how the interval narrows")
    right.grid(alpha=0.3)
    right.legend(fontsize=6)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/verdict-study")
    parser.add_argument("--hours", type=float, default=2.5, help="wall-clock budget for starting seed blocks")
    parser.add_argument("--max-seeds", type=int, default=40)
    parser.add_argument("--runner", default="processes", choices=("serial", "processes"))
    parser.add_argument("--analyse", action="store_true", help="print the tables (and --figure) from the records")
    parser.add_argument("--figure", default=None)
    parser.add_argument("--runs-csv", default=None, help="with --analyse: write the per-run table here")
    args = parser.parse_args(argv)
    if not args.hours > 0 or args.max_seeds < 3:
        parser.error("--hours must be positive and --max-seeds at least 3 (no verdict below three seeds)")
    output = Path(args.output)
    if not args.analyse:
        print(f"seeds finished in every cell: {run(output, args.hours, args.max_seeds, args.runner)}")
        return 0
    from .tables import to_markdown

    gaps = table(output)
    if gaps.empty:
        print(f"no cell has three finished seeds under {output}")
        return 1
    show: list[Any] = ["dataset", "model", "pairs", "dense_mean", "model_mean", "gap", "gap_low", "gap_high",
                       "halfwidth", "seed_sd", "test_se", "mde", "verdict", "three_seed_halfwidth", "seeds_for_3"]
    print(to_markdown(gaps[show].round(2)))
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        figure(gaps, running(output)).savefig(args.figure, dpi=130, bbox_inches="tight")
    if args.runs_csv:
        from ._io import atomic_write_bytes

        atomic_write_bytes(Path(args.runs_csv), runs_table(output).to_csv(index=False).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
