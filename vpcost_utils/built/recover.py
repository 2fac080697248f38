"""``python -m vpcost_utils.built.recover [TAG ...]``: build (or load) the recovered EfficientNet-Lite0 models.

Prints a Markdown table of each model's build and its agreement with the dense model on the held-out
photographs; ``--compare NAME ...`` adds rows for other Lite0 models (one-shot, PTQ, int8), measured the
same way. docs/models.md quotes its output.
"""

from __future__ import annotations

import argparse

from .agreement import upstream_agreement
from .efficientnet_lite_recovered import RECIPES, build_recovered

COLUMNS = ("model", "how", "steps", "build (min, threads)", "agreement 224 px (%)", "KL 224", "agreement 128 px (%)",
           "KL 128", "labelled photos same")


def row(name: str, agreement: dict, how: str, steps: object = "-", build: str = "-") -> str:
    a = agreement
    cells = (f"`{name}`", how, steps, build, f"{a['agreement_224']:.1f}", f"{a['kl_224']:.3f}",
             f"{a['agreement_128']:.1f}", f"{a['kl_128']:.3f}", f"{a['labelled_same']}/{len(a['labelled'])}")
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", nargs="*", help=f"which models (default all): {', '.join(RECIPES)}")
    parser.add_argument("--compare", nargs="*", default=[], help="other registry names to measure alongside")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tags if t not in RECIPES]
    if unknown:
        parser.error(f"unknown recovered model(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name in args.compare:
        from ..models._registry import create_model, get_entry

        model, dense = create_model(name), create_model("efficientnet_lite0/dense")
        agreement = model.provenance.get("agreement") or upstream_agreement(
            model.module, dense.module, dense.mean, dense.std, dense.class_names)
        lines.append(row(name, agreement, get_entry(name).notes or get_entry(name).method))
    for tag in args.tags or RECIPES:
        _, info = build_recovered(tag)
        r = info["recipe"]
        if r["kind"] == "quant":
            how = f"W{r['weight_bits']}A{r['act_bits']} LSQ QAT by KD"
        elif r.get("prune", "gmp") == "reconstruct":
            how = f"layer-wise OBS {r['sparsity']:.0%} + KD"
        else:
            how = f"GMP {r['start_sparsity']:.0%} -> {r['sparsity']:.0%} + KD"
        build = f"{info['build_seconds'] / 60:.0f}, {info['build_threads']}"
        lines.append(row(f"efficientnet_lite0/{tag}", info["agreement"], how, info["steps"], build))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
