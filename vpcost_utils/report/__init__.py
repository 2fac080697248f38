"""The hidden cost of *your* compressed model: one dense model, one or more compressed ones, any datasets.

``python -m vpcost_utils.report --dense A --compressed B [C ...] --datasets X [Y ...] --shots 1 10 full
--seeds 3 [--methods ilm lp]`` (or notebook ``08_your_model``) runs the paper's protocol (the reference's
hyperparameters) with each transfer method (default ILM-VP and the linear probe LP; any of rlm flm ilm lp) for
every model, dataset, N-shot budget and seed through the result store (resumable: a rerun skips finished runs;
failures are recorded and listed), then writes
``<output_dir>/<name>/report.md`` and a self-contained ``report.html`` (figures embedded) that answer,
per dataset and N: how accurate is each model (mean and 95 % t-interval over seeds), is the dense minus
compressed gap beyond noise (paired by seed: a pair shares training and test images; the interval counts
the seeds and the finite test set), does it
shrink with more data, is the compressed model worse calibrated, and (beyond the paper) does
temperature scaling, fitted on held-out training images, remove that calibration cost; all of it per method,
and where LP sees a gap that VP's interval is too wide to see, the verdict says so.

Every input is checked before any training: each model's output must be a K-way logit vector, each
dataset must have every class in both splits and enough training images per class for N plus the
held-out images.
"""


from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import VpcostError
from ..running.store import ResultStore
from ..stats import intervals
from ..stats.verdicts import verdict_words
from .analysis import accuracy_table, gap_table, verdicts, vp_too_wide
from .checks import check_dataset, check_model, preflight
from .document import Report
from .report_config import DEFAULT_METHODS, METHOD_LABELS, REPORT_METHODS, ReportConfig, parse_methods, parse_shots

__all__ = ["DEFAULT_METHODS", "METHOD_LABELS", "REPORT_METHODS", "Report", "ReportConfig", "accuracy_table", "build",
           "check_dataset", "check_model", "collect", "gap_table", "main", "parse_methods", "parse_shots",
           "preflight", "stein_plan", "verdict_words", "verdicts", "vp_too_wide"]

Plan = dict[tuple[str, str, str, str], int]


def collect(config: ReportConfig, store: ResultStore, seeds: Plan | int | None = None
            ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The finished runs of ``config`` (of ``seeds``: see ``ReportConfig.specs``) as a table (one row per run)
    and their records by run id."""
    rows, records = [], {}
    for spec in config.specs(seeds):
        if not store.has(spec):
            continue
        rec = store.read(spec.run_id)
        records[spec.run_id] = rec
        m = rec["metrics"]
        rows.append({"run_id": spec.run_id, "model": spec.model, "dataset": spec.dataset, "method": spec.method,
                     "n_shots": spec.n_shots, "shots": "full" if spec.n_shots is None else str(spec.n_shots),
                     "seed": spec.seed, **{k: m.get(k, math.nan) for k in
                                           ("acc", "ece", "ece_temp_scaled", "temperature", "nll",
                                            "nll_temp_scaled")}})
    columns = ["run_id", "model", "dataset", "method", "n_shots", "shots", "seed", "acc", "ece", "ece_temp_scaled",
               "temperature", "nll", "nll_temp_scaled"]
    return pd.DataFrame(rows, columns=columns), records


def build(config: ReportConfig, output_dir: str | Path = "outputs/report", *, runner: str = "serial",
          device: str | None = None, progress: bool = True) -> Report:
    """Check the inputs, run what is missing (runs go to ``<output_dir>/runs``, shared between reports) and
    return the report; ``report.write(<output_dir>/<name>)`` renders it."""
    from ..running.preflight import check
    from ..running.sweep import run_grid

    store = ResultStore(Path(output_dir) / "runs")
    # every problem of the grid at once (one seed stands for all: seeds change no check), then the report's own
    check(config.specs(1), store_root=store.root, device=device)
    models, datasets = preflight(config)
    target, plan = config.target, None
    if target is None:
        result = run_grid(config.specs(), store, runner=runner, device=device, progress=progress, on_error="continue")
    else:  # stage 1: the pilot; stage 2: what Stein's rule says each cell needs, decided by the pilot alone
        result = run_grid(config.specs(target.pilot), store, runner=runner, device=device, progress=progress,
                          on_error="continue")
        runs, records = collect(config, store, target.pilot)
        plan = stein_plan(config, runs, intervals.predictions_of(records))
        if progress:
            print("seeds per cell (Stein, pilot of", target.pilot, "):",
                  ", ".join(f"{m} {d} N={n} {METHOD_LABELS[x]}: {k}" for (m, d, n, x), k in plan.items()), flush=True)
        more = run_grid(config.specs(plan), store, runner=runner, device=device, progress=progress,
                        on_error="continue")
        result.failures += more.failures
    runs, records = collect(config, store, plan)
    return Report(config, runs, models, datasets, failures=result.failures, records=records, seed_plan=plan)


def stein_plan(config: ReportConfig, runs: pd.DataFrame, predictions: dict[str, Any]) -> Plan:
    """Stein's second stage per (model, dataset, shots, method): each method's pilot decides its own cells (LP's
    seed noise is not VP's). Refuses, naming the method, every cell the seed budget cannot reach."""
    from ..stats.sequential import check_budget, seed_plan, seeds_needed

    target = config.target
    needed = {m: seeds_needed(runs[runs["method"] == m], predictions, config.dense, config.compressed, target)
              for m in config.methods}
    check_budget(pd.concat([t.assign(model=t["model"] + f" ({METHOD_LABELS[m]})") for m, t in needed.items()],
                           ignore_index=True), target)  # every refused cell at once, named with its method
    return {(*key, m): n for m, t in needed.items() for key, n in seed_plan(t, config.dense).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dense", required=True, help="the uncompressed model: a registry name (resnet50/dense), "
                        "timm:NAME, torchvision:ARCH.WEIGHTS or file:PATH?arch=ARCH")
    parser.add_argument("--compressed", nargs="+", required=True, help="one or more compressed models, same forms")
    parser.add_argument("--datasets", nargs="+", required=True, help="registry datasets or folder:PATH")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                        help=f"transfer methods, any of {' '.join(REPORT_METHODS)} (rlm/flm/ilm, and beyond "
                             f"the paper blm/blm+/fullymap: visual prompting with that label mapping; lp: a linear "
                             f"probe on the frozen features, cheap); "
                             f"default: {' '.join(DEFAULT_METHODS)}")
    parser.add_argument("--shots", nargs="+", default=["1", "10", "full"], help="N-shot budgets; 'full' = all")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..k-1); no verdict below 3")
    parser.add_argument("--target-halfwidth", type=float, default=None, metavar="H",
                        help="a fixed-width study: every accuracy gap's 95 %% interval at most +-H points; a pilot "
                             "of --pilot-seeds seeds per cell, then as many seeds as Stein's two-stage rule needs")
    parser.add_argument("--max-seeds", type=int, default=None, metavar="K",
                        help="with --target-halfwidth: the most seeds any cell may run (default 30); a cell that "
                             "needs more is refused after the pilot, saying how many it needs")
    parser.add_argument("--pilot-seeds", type=int, default=5, help="with --target-halfwidth: the pilot's seeds")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--holdout", type=int, default=20, help="training images per class held out for the "
                        "temperature fit")
    parser.add_argument("--canvas", type=int, default=None)
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--substitute", action="store_true")
    parser.add_argument("--name", default=None, help="report folder name (default: from the model names)")
    parser.add_argument("--output-dir", default="outputs/report")
    parser.add_argument("--runner", default="serial", choices=("serial", "processes", "submitit"))
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        shots, methods = parse_shots(args.shots), parse_methods(args.methods)
    except VpcostError as exc:
        parser.error(str(exc))
    try:
        config = ReportConfig(dense=args.dense, compressed=tuple(args.compressed), datasets=tuple(args.datasets),
                              methods=methods, shots=shots, seeds=tuple(range(args.seeds)), epochs=args.epochs,
                              eval_every=args.eval_every, holdout=args.holdout, canvas=args.canvas,
                              max_test=args.max_test, substitute=args.substitute, name=args.name,
                              target_halfwidth=args.target_halfwidth, max_seeds=args.max_seeds,
                              pilot_seeds=args.pilot_seeds)
    except VpcostError as exc:
        parser.error(str(exc))
    try:
        report = build(config, args.output_dir, runner=args.runner, device=args.device)
    except VpcostError as exc:  # bad input: the message names the problem and the fix; no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = report.write(Path(args.output_dir) / config.folder_name)
    for verdict in report.verdicts():
        print("-", verdict.replace("**", ""))
    print(f"report: {paths['markdown']}\n        {paths['html']}")
    if report.failures:
        print(f"{len(report.failures)} run(s) failed; see the report's 'Failed runs' and the .error.json files in "
              f"{Path(args.output_dir) / 'runs'}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
