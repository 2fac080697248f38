"""The one prepared command for a lent GPU: converged VP cells, their throughput and same-spec-twice determinism.

``python -m vpcost_utils.studies.device_check --out $OUT`` runs the converged-VP cells that matter most (dense,
the positive control ``prune-70``, the best sparse model and Google's int8 model on Fashion-MNIST N=10, ILM, the
paper's 100 epochs at the models' own 224 px) on the GPU, each spec twice, and writes ``device_check.json`` (records'
accuracy, ECE, settled flag, images per second, and whether the two runs of a spec gave the same predictions) and
the records under ``$OUT/runs``. It fits the device tool's limits: about 8 minutes, files under 64 MiB (the Lite0
weights and Fashion-MNIST travel with ``carry``), no network there. ``--tiny`` runs the same code on the smoke
profile's CNN and generated digits, on whatever device is present: the tests run it on the CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..config import RunSpec

CELLS = ("efficientnet_lite0/dense", "efficientnet_lite0/prune-70", "efficientnet_lite0/prune-50",
         "efficientnet_lite0/int8-tflite")


def specs(tiny: bool, seeds: int) -> list[RunSpec]:
    if tiny:
        return [RunSpec(m, "digits", n_shots=5, seed=s, epochs=3, eval_every=3, max_test=100)
                for m in ("smallcnn/dense", "smallcnn/prune-90") for s in range(seeds)]
    return [RunSpec(m, "fashion_mnist", n_shots=10, seed=s, epochs=100, eval_every=100, max_test=2000)
            for m in CELLS for s in range(seeds)]


def check(out: Path, *, tiny: bool = False, seeds: int = 1, device: str | None = None) -> dict:
    """Run every spec twice on ``device`` (default: CUDA if present); returns and writes the summary."""
    from ..running.runs import execute

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in specs(tiny, seeds):
        twice = []
        for _ in range(2):
            start = time.time()
            record = execute(spec, device=device, progress=False)
            twice.append((record, time.time() - start))
        (record, seconds), (again, _) = twice
        images = record["data"]["steps"] * spec.effective_batch_size
        rows.append({"run_id": spec.run_id, "model": spec.model, "seed": spec.seed,
                     "acc": record["metrics"]["acc"], "ece": record["metrics"]["ece"],
                     "settled": record["convergence"]["settled"], "seconds": round(seconds, 2),
                     "train_images_per_s": round(images / seconds, 1),
                     "same_twice": record["test_predictions"] == again["test_predictions"],
                     "device": record["env"]["device"]})
        (out / "runs").mkdir(exist_ok=True)
        (out / "runs" / f"{spec.run_id}.json").write_text(json.dumps(record, default=str))
    summary = {"device": device, "torch": torch.__version__, "tiny": tiny, "runs": rows}
    (out / "device_check.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where device_check.json and runs/ go ($OUT)")
    parser.add_argument("--tiny", action="store_true", help="the smoke CNN on generated digits (any device)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    summary = check(args.out, tiny=args.tiny, seeds=args.seeds, device=args.device)
    for row in summary["runs"]:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
