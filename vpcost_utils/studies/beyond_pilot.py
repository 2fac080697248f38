"""The Beyond-ILM pilot (issue #35): each label mapping on dense EfficientNet-Lite0, Fashion-MNIST, N=10, seeds 0-2.

``python -m vpcost_utils.studies.beyond_pilot [--store DIR] [--seeds 0 1 2] [--methods ilm blm blm+ fullymap]
[--dataset mnist] [--shots 50]`` (the other cells of issue #35's table: the same protocol, another target or N)

The mini profile's protocol (16 epochs, evaluated once at the end, 128-px canvas, the fixed 2,000-image test subset,
one thread per run): only the method changes. Fixed before any result was seen: the cell, the seeds and the methods.
Seeds run in the outer loop, so a pilot cut short still has every method at the seeds it reached. Prints one line
per run and then each method's mean accuracy and ECE with a 95 % t-interval over seeds.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from ..config import RunSpec
from ..profiles import COMMON, LITE0
from ..stats.intervals import t_interval

CELL = {"dataset": "fashion_mnist", "n_shots": 10}
METHODS = ("ilm", "blm", "blm+", "fullymap")


def pilot_specs(seeds: list[int], methods: list[str], cell: dict | None = None) -> list[RunSpec]:
    """The pilot's runs, seed by seed; the mini profile's fields, so the ILM runs are the mini study's own ids.
    ``cell``: the dataset and N (default ``CELL``)."""
    mini = COMMON["mini"]
    return [RunSpec(f"{LITE0}/dense", method=m, seed=s, epochs=mini.epochs, eval_every=mini.eval_every,
                    canvas=mini.canvas, max_test=mini.max_test, **(cell or CELL)) for s in seeds for m in methods]


def cpu_model() -> str:
    """The machine, as ``lscpu`` names it (the numbers of a run depend on its kernels)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def summary(records: list[dict]) -> list[str]:
    """Per method: seeds, mean accuracy and ECE, each with its 95 % t-interval; then, for every method but ILM, its
    difference from ILM paired by seed (same seed: same N-shot draw and batch order), with its t-interval."""
    by = {(r["spec"]["method"], r["spec"]["seed"]): r["metrics"] for r in records}
    lines = []
    for method in dict.fromkeys(m for m, _ in by):
        seeds = sorted(s for m, s in by if m == method)
        cells = []
        for metric, scale in (("acc", 1), ("ece", 100)):
            mean, low, high = t_interval([scale * by[method, s][metric] for s in seeds])  # NaN below two seeds
            cells.append(f"{metric} {mean:.1f} [{low:.1f}, {high:.1f}]")
            paired = [scale * (by[method, s][metric] - by["ilm", s][metric]) for s in seeds if ("ilm", s) in by]
            if method != "ilm" and paired:
                mean, low, high = t_interval(paired)
                cells.append(f"{metric} - ilm {mean:+.1f} [{low:+.1f}, {high:+.1f}] ({len(paired)} pairs)")
        lines.append(f"{method:9s} seeds {seeds}: " + ", ".join(cells) + " (ECE in %)")
    return lines


def main(argv: list[str] | None = None) -> int:
    from ..running.runs import run
    from ..running.store import ResultStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="outputs/beyond-pilot/runs", help="the records' folder")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--dataset", default=CELL["dataset"], choices=("fashion_mnist", "mnist"))
    parser.add_argument("--shots", type=int, default=CELL["n_shots"])
    args = parser.parse_args(argv)
    store = ResultStore(args.store)
    print(f"# machine: {cpu_model()}", flush=True)
    records = []
    print(f"# cell: {args.dataset}, N={args.shots}", flush=True)
    for spec in pilot_specs(args.seeds, args.methods, {"dataset": args.dataset, "n_shots": args.shots}):
        rec = run(spec, store, progress=False)
        records.append(rec)
        m = rec["metrics"]
        print(f"{spec.method:9s} seed {spec.seed}: acc {m['acc']:.2f} ece {m['ece']:.4f} "
              f"wall {rec['env'].get('wall_time_s', float('nan')):.0f} s  ({spec.run_id})", flush=True)
    print("\n".join(summary(records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
