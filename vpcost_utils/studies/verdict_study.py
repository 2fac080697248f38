"""The mini profile's N=10 cells (or N=1, N=50): a clock-stopped pilot, Stein's second stage, and verdicts.

``python -m vpcost_utils.studies.verdict_study --hours 2.5`` runs the mini profile's own N=10 runs (dense
EfficientNet-Lite0 against every compressed model of its sparse and quantization sections, on MNIST and
Fashion-MNIST; the same specs and run ids as ``make reproduce PROFILE=mini``) seed by seed, all cells
together: seed block 0-1 of every cell, then 2-3, and so on, until the next block would not finish
inside the budget or ``--max-seeds`` is reached. ``--analyse`` reads the records and gives every
cell's paired gap with its 95 % interval (seeds and the test set counted, ``intervals.paired_gaps``),
its verdict, the gap it could have detected, and what +-3 points would have cost. ``--stein H --pilot
n0`` is the second stage: from the first n0 seeds' paired-gap sd (and the test set's variance) alone,
Stein's rule gives each cell the seeds a +-H interval needs; each cell runs exactly that many, and its
interval takes the pilot's sd and t (``intervals.paired_gaps(pilot=n0)``). ``--shots 1`` (or 50) studies
another of the profile's budgets.

Why a clock-stopped pilot rather than ``report --target-halfwidth`` from five seeds: with a pilot of five
the rule's t has 4 degrees of freedom (2.78 against about 2.09 with twenty), so at the seed noise of these
cells (sd 5-8 points) it asks for 60-135 seeds per cell, beyond any CPU session. A fixed design whose size
is set by the clock is valid for the plain t-interval as long as the stopping never looks at the results
(the budget decides how many seed blocks start; the analysis uses only the seeds every cell finished), so
it is a valid pilot too, with many more degrees of freedom.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import RunSpec
from ..stats.verdicts import verdict_words

SHOTS = 10
SECTIONS = ("sparse_transfer", "quantization")
BLOCK = 2  # seeds started together: both workers stay busy to the block's end


def families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The mini profile's families (family -> (dense, compressed models)) of the sections studied here."""
    from .. import profiles

    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for section in SECTIONS:
        out.update(profiles.settings(section, "mini")["families"])
    return out


def _profile_shots(section: str) -> tuple[int, ...]:
    from .. import profiles

    return tuple(n for n in profiles.settings(section, "mini")["shots"] if n is not None)


def specs(seeds: range, shots: int = SHOTS) -> list[RunSpec]:
    """The mini profile's N=``shots`` runs of ``seeds``, seed-major, each run once (the dense runs are shared)."""
    from .. import grids

    seen: dict[str, RunSpec] = {}
    for section in SECTIONS:
        if shots not in _profile_shots(section):  # e.g. int8 has no N=50 in the mini profile: not added here
            continue
        for spec in grids.section_runs(section, "mini", seeds=tuple(seeds), shots=(shots,)):
            seen.setdefault(spec.run_id, spec)
    return sorted(seen.values(), key=lambda s: (s.seed, s.dataset, s.model))


def run(output: Path, hours: float, max_seeds: int, runner: str = "processes", shots: int = SHOTS) -> int:
    """Run seed blocks until the budget or ``max_seeds``; returns the seeds every cell has finished."""
    from ..running.store import ResultStore
    from ..running.sweep import pending, run_grid

    store = ResultStore(output / "runs")
    start, spent = time.monotonic(), []
    for first in range(0, max_seeds, BLOCK):
        block = specs(range(first, min(first + BLOCK, max_seeds)), shots)
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
    return finished_seeds(store.table(), shots)


def stein_plan(output: Path, halfwidth: float, pilot: int, max_seeds: int,
               shots: int = SHOTS) -> dict[tuple[str, str, str], int]:
    """(model, dataset, shots) -> seeds Stein's second stage asks for, from the first ``pilot`` seeds alone.

    The pilot is this study's own clock-stopped fixed design, so its seed sd is independent of anything the
    stopping saw; the rule reads only that sd (and the test set's variance), never the gaps' mean.
    """
    return _stein_plan(*_load(output), halfwidth, pilot, max_seeds, shots)


def _stein_plan(runs: pd.DataFrame, records: list[dict], halfwidth: float, pilot: int, max_seeds: int,
                shots: int) -> dict[tuple[str, str, str], int]:
    from ..stats import intervals
    from ..stats.sequential import Target, check_budget, seed_plan, seeds_needed

    have = finished_seeds(runs, shots)
    if have < pilot:
        raise SystemExit(f"the pilot needs seeds 0..{pilot - 1} finished in every cell; {have} are: "
                         f"run the fixed design first (--hours)")
    wanted = {s.run_id for s in specs(range(pilot), shots)}
    runs = runs[runs["run_id"].isin(wanted)].assign(shots=str(shots))
    preds = intervals.predictions_of([r for r in records if r["run_id"] in wanted])
    target, plan = Target(halfwidth, max_seeds, pilot), {}
    for dense, compressed in families().values():
        needed = seeds_needed(runs, preds, dense, compressed, target)
        check_budget(needed, target)
        for key, n in seed_plan(needed, dense).items():
            plan[key] = max(plan.get(key, 0), n)
    return plan


def stein_specs(plan: dict[tuple[str, str, str], int], shots: int = SHOTS) -> list[RunSpec]:
    """The runs ``plan`` asks for, seed-major (so an interrupted stage 2 has finished whole low seeds)."""
    top = max(plan.values())
    return [s for s in specs(range(top), shots) if s.seed < plan.get((s.model, s.dataset, str(shots)), 0)]


def run_stein(output: Path, halfwidth: float, pilot: int, max_seeds: int, runner: str = "processes",
              shots: int = SHOTS) -> None:
    from ..running.store import ResultStore
    from ..running.sweep import pending, run_grid

    plan = stein_plan(output, halfwidth, pilot, max_seeds, shots)
    print(f"Stein's rule, pilot of {pilot} seeds, +-{halfwidth:g} points:",
          ", ".join(f"{m.split('/')[-1]} {d}: {n}" for (m, d, _), n in sorted(plan.items())), flush=True)
    store = ResultStore(output / "runs")
    todo = pending(stein_specs(plan, shots), store)
    print(f"{len(todo)} runs to go", flush=True)
    print(run_grid(todo, store, runner=runner, on_error="record"), flush=True)


def finished_seeds(runs: pd.DataFrame, shots: int = SHOTS) -> int:
    """The largest k such that every run of seeds 0..k-1 of every cell has a record."""
    if runs.empty:
        return 0
    have = set(runs["run_id"])
    k = 0
    while all(s.run_id in have for s in specs(range(k, k + 1), shots)):
        k += 1
    return k


def table(output: Path, seeds: int | None = None, *, stein: tuple[float, int] | None = None,
          shots: int = SHOTS) -> pd.DataFrame:
    """Per (dataset, compressed model): the paired gap over the first ``seeds`` seeds (default: all finished).

    ``stein=(H, n0)``: the second stage's table instead: each cell over the seeds Stein's rule gave it, its
    interval Stein's (the first ``n0`` seeds' sd and t); ``seeds`` is then ignored.
    """
    return _table(*_load(output), seeds, stein, shots)


def _load(output: Path) -> tuple[pd.DataFrame, list[dict]]:
    """The study's run table and its records, each record file read once."""
    from ..running.store import ResultStore

    store = ResultStore(output / "runs")
    records = list(store.records())
    return store.table(records), records


def _table(runs: pd.DataFrame, records: list[dict], seeds: int | None, stein: tuple[float, int] | None,
           shots: int) -> pd.DataFrame:
    from ..stats import intervals

    wanted = _wanted(runs, records, seeds, stein, shots)
    pilot = None if stein is None else stein[1]
    runs = runs[runs["run_id"].isin(wanted)]
    records = [r for r in records if r["run_id"] in wanted]
    gaps = intervals.paired_gaps(runs, families(), "acc", predictions=intervals.predictions_of(records), pilot=pilot)
    noise = list(zip(gaps["seed_sd"], gaps["test_se"], strict=True))
    return gaps.assign(verdict=[verdict_words(v) for v in gaps["verdict"]],
                       three_seed_halfwidth=[_resolvable(sd, 3, se)[0] for sd, se in noise],
                       seeds_for_3=[_cost(sd, se, 3.0) for sd, se in noise])


def _wanted(runs: pd.DataFrame, records: list[dict], seeds: int | None, stein: tuple[float, int] | None,
            shots: int) -> set[str]:
    """The run ids a table covers: the first ``seeds`` seeds (default: all finished), or Stein's stage 2."""
    if stein is None:
        k = finished_seeds(runs, shots) if seeds is None else seeds
        return {s.run_id for s in specs(range(k), shots)}
    plan = _stein_plan(runs, records, stein[0], stein[1], 10 ** 6, shots)
    return {s.run_id for s in stein_specs(plan, shots)}


def runs_table(output: Path, seeds: int | None = None, *, stein: tuple[float, int] | None = None,
               shots: int = SHOTS) -> pd.DataFrame:
    """One row per run behind ``table`` (its seeds): what docs keep, since the records' directory may not last."""
    runs, records = _load(output)
    runs = runs[runs["run_id"].isin(_wanted(runs, records, seeds, stein, shots))]
    columns = ["run_id", "dataset", "model", "seed", "n_shots", "epochs", "acc", "ece", "wall_time_s", "threads",
               "mapping_changes", "settled", "cpu_kernels", "git_commit"]
    return runs[columns].sort_values(["seed", "dataset", "model"]).reset_index(drop=True)


def _resolvable(sd: float, seeds: int, test_se: float) -> tuple[float, float]:
    from ..stats.sequential import resolvable

    return resolvable(sd, seeds, 0.0 if pd.isna(test_se) else test_se)


def _cost(sd: float, test_se: float, halfwidth: float) -> int | None:
    """Seeds of a fixed design whose expected 95 % half-width is ``halfwidth`` at this sd."""
    for n in range(3, 2000):
        if _resolvable(sd, n, test_se)[0] <= halfwidth:
            return n
    return None


def running(output: Path, upto: int | None = None, shots: int = SHOTS) -> pd.DataFrame:
    """The interval of every cell after each finished seed count from 3 on (how the width falls with seeds)."""
    rows = []
    runs, records = _load(output)
    k = finished_seeds(runs, shots)
    k = k if upto is None else min(k, upto)
    for n in range(3, k + 1):
        part = _table(runs, records, n, None, shots)
        rows.append(part.assign(seeds=n)[["seeds", "dataset", "model", "gap", "gap_low", "gap_high", "halfwidth"]])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def figure(gaps: pd.DataFrame, trace: pd.DataFrame, target: float = 3.0):
    """Left: every cell's gap and 95 % interval; right: the half-width against seeds."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.0), gridspec_kw={"width_ratios": [1.2, 1]})
    labels = [f"{r.dataset}\n{r.model.split('/')[-1]}" for r in gaps.itertuples()]
    y = range(len(gaps))
    left.errorbar(gaps["gap"], y, xerr=[gaps["gap"] - gaps["gap_low"], gaps["gap_high"] - gaps["gap"]], fmt="o",
                  capsize=3)
    left.axvline(0, c="grey", lw=0.8)
    left.set_yticks(list(y), labels, fontsize=7)
    seeds = f"{int(gaps['pairs'].min())}" if gaps["pairs"].nunique() == 1 else \
        f"{int(gaps['pairs'].min())}-{int(gaps['pairs'].max())}"
    stein = gaps.loc[gaps["rule"] != "t", "rule"]
    rule = "" if stein.empty else f", {stein.iloc[0].replace('stein', 'Stein')} stage 2"
    left.set(xlabel="dense - compressed accuracy (points; > 0: compressed transfers worse)",
             title=f"N={gaps['shots'].iloc[0]}, ILM-VP, {seeds} seeds, 95 % intervals{rule}")
    left.grid(alpha=0.3)
    for (dataset, model), part in trace.groupby(["dataset", "model"], sort=False):
        right.plot(part["seeds"], part["halfwidth"], marker=".", label=f"{dataset} {model.split('/')[-1]}")
    if (gaps["rule"] != "t").any():  # Stein's second stage: where each cell ended
        right.scatter(gaps["pairs"], gaps["halfwidth"], marker="*", c="k", s=40, zorder=3, label="Stein stage 2")
    right.axhline(target, c="grey", ls="--", lw=0.8, label=f"+-{target:g} points (target)")
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
    parser.add_argument("--stein", type=float, default=None, metavar="H",
                        help="Stein's second stage: run the seeds each cell needs for a +-H half-width, "
                             "the first --pilot seeds being the pilot")
    parser.add_argument("--pilot", type=int, default=20)
    parser.add_argument("--shots", type=int, default=SHOTS, help="the N of the cells studied (one of the mini "
                        "profile's budgets)")
    parser.add_argument("--analyse", action="store_true", help="print the tables (and --figure) from the records")
    parser.add_argument("--figure", default=None)
    parser.add_argument("--runs-csv", default=None, help="with --analyse: write the per-run table here")
    args = parser.parse_args(argv)
    if not args.hours > 0 or args.max_seeds < 3:
        parser.error("--hours must be positive and --max-seeds at least 3 (no verdict below three seeds)")
    budgets = {n for sec in SECTIONS for n in _profile_shots(sec)}
    if args.shots not in budgets:
        parser.error(f"--shots {args.shots} is not a budget of the mini profile; choose one of {sorted(budgets)}")
    output = Path(args.output)
    if args.stein is not None and not args.analyse:
        run_stein(output, args.stein, args.pilot, args.max_seeds, args.runner, args.shots)
        return 0
    if not args.analyse:
        print(f"seeds finished in every cell: {run(output, args.hours, args.max_seeds, args.runner, args.shots)}")
        return 0
    from ..nb.tables import to_markdown

    stein = (args.stein, args.pilot) if args.stein is not None else None
    gaps = table(output, stein=stein, shots=args.shots)
    if gaps.empty:
        print(f"no cell has three finished seeds under {output}")
        return 1
    show: list[Any] = ["dataset", "model", "rule", "pairs", "dense_mean", "model_mean", "gap", "gap_low", "gap_high",
                       "halfwidth", "seed_sd", "test_se", "mde", "verdict", "three_seed_halfwidth", "seeds_for_3"]
    print(to_markdown(gaps[show].round(2)))
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        trace = running(output, args.pilot if stein else None, args.shots)
        figure(gaps, trace, args.stein or 3.0).savefig(args.figure, dpi=130, bbox_inches="tight")
    if args.runs_csv:
        from .._io import atomic_write_bytes

        kept = runs_table(output, stein=stein, shots=args.shots)
        atomic_write_bytes(Path(args.runs_csv), kept.to_csv(index=False).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
