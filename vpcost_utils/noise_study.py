"""Where a mini cell's seed noise comes from: ``python -m vpcost_utils.noise_study --phase core``.

The paired dense-minus-compressed gap of one cell (model pair, dataset, N) varies from seed to seed
for three reasons that the spec can now vary one at a time:

- ``sample``: which N images per class are drawn (``RunSpec.sample_seed``; the optimisation seed fixed).
  This is the variance of the data budget itself, the paper's subject;
- ``opt``: the batch order (``RunSpec.seed`` with the sample fixed); ILM-VP has no other randomness (the
  prompt starts at 0, the mapping is a vote);
- ``arith``: the float summation order alone (same spec on 2 threads per run instead of 1).

``both`` is the ordinary design (one seed draws both). Each design runs at several training lengths;
``analyse`` decomposes the paired gap's variance per design and length. Records go to
``<output>/runs`` (``<output>/runs-threads2`` for ``arith``), resumable like every sweep.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .config import RunSpec

DENSE = "efficientnet_lite0/dense"
COMPRESSED = ("efficientnet_lite0/prune-50", "efficientnet_lite0/int8-tflite")
CELL = {"dataset": "mnist", "n_shots": 10, "canvas": 128, "max_test": 2000, "method": "ilm"}
DESIGNS = ("both", "sample", "opt", "arith", "bf16")


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
    "split": [("sample", (DENSE, COMPRESSED[0]), 64, 4), ("opt", (DENSE, COMPRESSED[0]), 64, 4),
              ("sample", (DENSE, COMPRESSED[0]), 16, 4), ("opt", (DENSE, COMPRESSED[0]), 16, 4)],
    "bf16": [("bf16", (DENSE, COMPRESSED[0]), 64, 4)],
    "arith": [("arith", (DENSE, COMPRESSED[0]), 64, 3), ("arith", (DENSE, COMPRESSED[0]), 16, 3)],
}


def run_phase(phase: str, output: Path, runner: str = "processes") -> None:
    from .store import ResultStore
    from .sweep import run_grid

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", nargs="+", choices=sorted(PHASES), default=["core"])
    parser.add_argument("--output", default="outputs/noise-study")
    parser.add_argument("--runner", default="processes", choices=("serial", "processes"))
    args = parser.parse_args(argv)
    for phase in args.phase:
        run_phase(phase, Path(args.output), args.runner)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
