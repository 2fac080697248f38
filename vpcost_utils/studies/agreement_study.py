"""Does how much of the ImageNet function a model keeps predict what it loses in transfer?

``python -m vpcost_utils.studies.agreement_study`` runs the named larger grid of the mini profile: dense
EfficientNet-Lite0 and every compressed Lite0 we have (one-shot pruned, PTQ, Google's int8 file, and the
recovered sparse and low-bit students), ILM-VP on one mini cell (MNIST, N=10, 128-px canvas, 2,000 test
images) over ``--seeds`` seeds; ``--analyse`` pairs each compressed model's runs with the dense ones by seed,
puts the gap (with its interval counting seeds and the test set) next to the model's upstream agreement on
the held-out photographs (``built/agreement.py``), and draws the figure of docs/mini-study.md.
Records go to ``<output>/runs`` and are resumed like every sweep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ..config import RunSpec

DENSE = "efficientnet_lite0/dense"
#: compressed model -> the kind the figure colours it by
MODELS: dict[str, str] = {
    "efficientnet_lite0/prune-30": "one-shot sparse",
    "efficientnet_lite0/prune-50": "one-shot sparse",
    "efficientnet_lite0/prune-50-recovered": "recovered sparse",
    "efficientnet_lite0/prune-70": "one-shot sparse",
    "efficientnet_lite0/prune-70-recovered": "recovered sparse",
    "efficientnet_lite0/w4a4": "PTQ",
    "efficientnet_lite0/w4a8-recovered": "recovered low-bit",
    "efficientnet_lite0/w4a4-recovered": "recovered low-bit",
    "efficientnet_lite0/int8-tflite": "Google int8",
}
CELL = {"dataset": "mnist", "n_shots": 10, "canvas": 128, "max_test": 2000, "method": "ilm", "epochs": 16,
        "eval_every": 16}


def specs(seeds: int, models: list[str] | None = None) -> list[RunSpec]:
    """Every run of the grid: dense and each compressed model, seeds ``0..seeds-1``, on ``CELL``."""
    return [RunSpec(model, seed=s, **CELL) for s in range(seeds) for model in [DENSE, *(models or MODELS)]]


def agreements(output: Path, models: list[str]) -> dict[str, dict]:
    """Each model's upstream agreement: from its provenance when it carries one, else measured here (cached)."""
    from .._io import atomic_write_bytes
    from ..built.agreement import upstream_agreement
    from ..models import create_model

    path = output / "agreement.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    dense = None
    for name in models:
        if name in known:
            continue
        model = create_model(name)
        if "agreement" in model.provenance:
            known[name] = model.provenance["agreement"]
        else:
            dense = dense or create_model(DENSE)
            known[name] = upstream_agreement(model.module, dense.module, dense.mean, dense.std, dense.class_names)
        atomic_write_bytes(path, json.dumps(known, indent=1).encode())
    return known


def table(output: Path) -> pd.DataFrame:
    """Per compressed model: agreement, mean accuracies, gap with its interval and verdict."""
    from ..running.store import ResultStore
    from ..stats import intervals

    store = ResultStore(output / "runs")
    runs = store.table()
    if runs.empty:
        return runs
    models = [m for m in MODELS if m in set(runs["model"])]
    gaps = intervals.paired_gaps(runs, {"lite0": (DENSE, models)}, "acc",
                                 predictions=intervals.predictions_of(list(store.records())))
    agree = agreements(output, models)
    rows = []
    for g in gaps.itertuples():
        a = agree[g.model]
        rows.append({"model": g.model.split("/")[-1], "kind": MODELS[g.model], "agreement_224": a["agreement_224"],
                     "agreement_128": a["agreement_128"], "kl_128": a["kl_128"], "seeds": g.pairs,
                     "dense_acc": g.dense_mean, "model_acc": g.model_mean, "gap": g.gap, "gap_low": g.gap_low,
                     "gap_high": g.gap_high, "halfwidth": g.halfwidth, "mde": g.mde, "verdict": g.verdict})
    return pd.DataFrame(rows)


def figure(rows: pd.DataFrame, x: str = "agreement_128"):
    """Transfer gap (dense minus compressed accuracy, 95 % interval) against upstream agreement."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    markers = {"one-shot sparse": "o", "recovered sparse": "s", "PTQ": "v", "recovered low-bit": "D",
               "Google int8": "*"}
    rank = rows[x].rank(method="first").astype(int)
    for kind, part in rows.groupby("kind", sort=False):
        ax.errorbar(part[x], part["gap"], yerr=[part["gap"] - part["gap_low"], part["gap_high"] - part["gap"]],
                    fmt=markers.get(kind, "o"), capsize=3, ms=7, label=kind)
        for r in part.itertuples():
            # labels alternate above / below along x, so neighbours (int8, prune-70-recovered) stay readable
            ax.annotate(r.model, (getattr(r, x), r.gap), textcoords="offset points",
                        xytext=(5, 4 if rank[r.Index] % 2 == 0 else -11), fontsize=7)
    ax.axhline(0, c="grey", lw=0.8)
    size = x.rsplit("_", 1)[-1]
    ax.set(xlabel=f"top-1 agreement with dense Lite0 on held-out photographs, {size} px (%)",
           ylabel="dense - compressed accuracy (points)",
           title=f"MNIST N=10, ILM-VP, {_seeds(rows)} seeds (95 % intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _seeds(rows: pd.DataFrame) -> str:
    low, high = int(rows["seeds"].min()), int(rows["seeds"].max())
    return str(low) if low == high else f"{low}-{high}"


def rank_correlation(rows: pd.DataFrame, x: str = "agreement_128") -> float:
    """Spearman's rho between agreement and gap (negative: models that keep more lose less)."""
    from scipy import stats

    return float(stats.spearmanr(rows[x], rows["gap"]).statistic) if len(rows) > 2 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/agreement-study")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=None, help=f"compressed models (default: all of {list(MODELS)})")
    parser.add_argument("--runner", default="processes", choices=("serial", "processes"))
    parser.add_argument("--analyse", action="store_true", help="print the table (and --figure) from the records")
    parser.add_argument("--figure", default=None)
    args = parser.parse_args(argv)
    output = Path(args.output)
    unknown = sorted(set(args.models or ()) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if not args.analyse:
        from ..running.store import ResultStore
        from ..running.sweep import run_grid

        print(run_grid(specs(args.seeds, args.models), ResultStore(output / "runs"), runner=args.runner,
                       on_error="record"))
        return 0
    from ..nb.tables import to_markdown

    rows = table(output)
    print(to_markdown(rows.round(2)))
    for x in ("agreement_224", "agreement_128"):
        print(f"Spearman rho ({x} vs gap): {rank_correlation(rows, x):+.2f} over {len(rows)} models")
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        figure(rows).savefig(args.figure, dpi=130, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
