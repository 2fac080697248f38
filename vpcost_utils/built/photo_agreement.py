"""``python -m vpcost_utils.built.photo_agreement [NAME ...] [--probe N ...]``: agreement on every held-out photograph.

For each Lite0 registry name: load (or build) the model and measure its top-1 agreement and KL with the dense
model on the crops of all seven held-out photographs (``photo_packages.held_out_agreement``), at 224 and 128
px, beside the three-photograph figure the earlier table used (``agreement.upstream_agreement``). ``--probe N``
adds the data-against-recipe probe of issue #36: a one-shot layer-wise OBS reconstruction to 50 % sparsity
(``reconstruct.reconstruct_prune``, the first stage of ``prune-50-reconstructed``, no distillation) calibrated
on the first N calibration photographs (``photo_packages.calibration_names``), so the number of photographs is
the only thing that changes. Prints one JSON line per model (with wall seconds) and a Markdown table;
docs/models.md quotes it. Only forward passes, except for models not yet built.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from ..arithmetic import fixed_arithmetic
from .agreement import normalise, upstream_agreement
from .photo_packages import SIZES, calibration_crops_of, calibration_names, held_out_agreement, held_out_crops

DENSE = "efficientnet_lite0/dense"
PROBE_CROPS, PROBE_SIZE, PROBE_SEED = 256, 128, 0  # as the prune-50-reconstructed recipe calibrates


def _row(name: str, a: dict, old: dict | None, seconds: float) -> str:
    old_cells = f"{old['agreement_224']:.1f} / {old['agreement_128']:.1f}" if old else "-"
    return (f"| `{name}` | {a['agreement_224']:.1f} | {a['kl_224']:.3f} | {a['agreement_128']:.1f} | "
            f"{a['kl_128']:.3f} | {old_cells} | {seconds:.0f} |")


def probe(n: int, dense: torch.nn.Module, mean: tuple, std: tuple) -> torch.nn.Module:
    """Dense Lite0 pruned to 50 % by layer-wise OBS reconstruction calibrated on the first ``n`` photographs."""
    from .efficientnet_lite_compressed import pruned_layers
    from .reconstruct import reconstruct_prune

    module = copy.deepcopy(dense)
    crops = calibration_crops_of(calibration_names(n), PROBE_CROPS, PROBE_SIZE, PROBE_SEED)
    reconstruct_prune(module, pruned_layers(module), list(normalise(crops, mean, std).split(64)), 0.5, progress=False)
    return module.eval()


def main(argv: list[str] | None = None) -> None:
    from ..models._registry import create_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Lite0 registry names")
    parser.add_argument("--probe", nargs="*", type=int, default=[], help="numbers of calibration photographs")
    args = parser.parse_args(argv)
    rows = []
    with fixed_arithmetic("cpu"):
        dense = create_model(DENSE)
        with torch.no_grad():
            ref = {s: torch.cat([dense.module(b) for b in normalise(held_out_crops(s), dense.mean, dense.std)
                                 .split(64)]) for s in SIZES}
        for name in args.names:
            start = time.time()
            model = create_model(name)
            old = model.provenance.get("agreement") or upstream_agreement(
                model.module, dense.module, dense.mean, dense.std, dense.class_names)
            a = held_out_agreement(model.module, dense.module, dense.mean, dense.std, ref)
            seconds = time.time() - start
            print(json.dumps({"name": name, "seconds": round(seconds, 1), **a, "three_photos": old}), flush=True)
            rows.append(_row(name, a, old, seconds))
        for n in args.probe:
            start = time.time()
            module = probe(n, dense.module, dense.mean, dense.std)
            a = held_out_agreement(module, dense.module, dense.mean, dense.std, ref)
            old = None  # the three-photograph figure is left out here: CPU time is short and the seven include them
            seconds = time.time() - start
            name = f"OBS 50 % one-shot, {n} photographs"
            print(json.dumps({"name": name, "seconds": round(seconds, 1), **a, "three_photos": old}), flush=True)
            rows.append(_row(name, a, old, seconds))
    print("| model | agreement 224 (%) | KL 224 | agreement 128 (%) | KL 128 | 3 photos 224 / 128 (%) | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
