"""What every section notebook does besides science: settings, output folders, saving, preflight.

Notebooks stay thin (parameters, calls, plots); this module holds the plumbing they share so a
notebook cell is one line. Outputs go to ``<output_dir>/<profile>/{figures,tables,metrics,runs}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import profiles
from .. import rehearsal_mode as rehearsal
from .._io import atomic_write_bytes
from ..config import RunSpec
from ..errors import SpecError
from ..running.store import ResultStore


def interactive() -> bool:
    """True in JupyterLab / Colab with a live front end; False headless or in plain Python.

    A papermill kernel looks like any Jupyter kernel from inside, so our runner (``reproduce``) and
    the tests mark headless runs with ``VPCOST_HEADLESS=1``.
    """
    if os.environ.get("VPCOST_HEADLESS", "0") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _show_png(data: bytes) -> None:
    """Show a saved figure in the notebook (our figures are built without pyplot, so nothing else shows them)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=data))


@dataclass
class Section:
    """One notebook's resolved settings and output locations."""

    name: str
    settings: dict[str, Any]
    out: Path
    store: ResultStore
    artifacts: list[str] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.settings["profile"]

    def _write(self, sub: str, name: str, data: bytes) -> Path:
        path = self.out / sub / name
        atomic_write_bytes(path, data)
        self.artifacts.append(str(path.relative_to(self.out)))
        return path

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as PNG and PDF under figures/; returns the PNG path."""
        import io

        if rehearsal.active():  # random weights and fake data: the figure itself must say so
            fig.text(0.5, 0.5, "REHEARSAL\nnot a result", ha="center", va="center", fontsize=28, color="red",
                     alpha=0.35, rotation=30, transform=fig.transFigure)
        png = None
        for fmt in ("png", "pdf"):
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight")
            path = self._write("figures", f"{name}.{fmt}", buffer.getvalue())
            if png is None:
                png = path
                _show_png(buffer.getvalue())
        return png

    def save_table(self, df: Any, name: str) -> Path:
        """Save a DataFrame as CSV and Markdown under tables/; returns the CSV path."""
        from .tables import to_markdown

        path = self._write("tables", f"{name}.csv", df.to_csv(index=False).encode())
        self._write("tables", f"{name}.md", to_markdown(df).encode())
        return path

    def save_metrics(self, data: dict[str, Any], name: str) -> Path:
        from ..running.store import _jsonable

        return self._write("metrics", f"{name}.json", json.dumps(_jsonable(data), indent=1, sort_keys=True).encode())

    def specs(self) -> list[RunSpec]:
        """The runs this section needs (``grids.section_runs`` on its resolved settings)."""
        from ..grids import section_runs

        return section_runs(self.name, self.profile, **{k: v for k, v in self.settings.items() if k != "profile"})

    def run(self, specs: list[RunSpec], *, device: str | None = None, runner: str = "serial") -> Any:
        """Preflight, then run every spec not yet stored; returns the store's table."""
        from ..running.sweep import run_grid

        preflight(specs, store_root=self.store.root, device=device)
        specs = drop_oversized_shots(specs)
        result = run_grid(specs, self.store, runner=runner, device=device)
        print(f"{self.name}: {result}")
        return self.store.table()


INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects after the `parameters` cell


def _assigned_names(source: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def check_injected_parameters(history: list[str] | None = None) -> None:
    """Refuse a papermill parameter the notebook's ``parameters`` cell does not declare.

    papermill only warns about an unknown ``-p`` name and runs the whole notebook with it ignored,
    so a typo (``-p epoch 5``) silently costs a full sweep. The kernel's input history holds the
    injected cell (it starts with ``# Parameters``) and, just before it, the declared parameters
    cell: any injected name not assigned there stops the notebook here, naming both sets.
    """
    if history is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
        history = list(shell.user_ns.get("In", []))
    cells = [c for c in history if c and c.strip()]
    injected = [i for i, c in enumerate(cells) if c.lstrip().startswith(INJECTED_HEADER)]
    if not injected or injected[-1] == 0:
        return
    at = injected[-1]
    declared = _assigned_names(cells[at - 1])
    unknown = sorted(_assigned_names(cells[at]) - declared)
    if unknown and declared:
        raise SpecError(f"this notebook does not declare parameter(s) {unknown}; its parameters are "
                        f"{sorted(declared)}. Fix the -p name (papermill itself only warns and would run on).")


def setup(section: str, profile: str, output_dir: str | Path, **overrides: Any) -> Section:
    """Resolve a notebook's settings and make its output folders (``<output_dir>/<profile>``)."""
    check_injected_parameters()
    settings = profiles.settings(section, profile, **overrides)
    out = Path(output_dir) / profile
    out.mkdir(parents=True, exist_ok=True)
    return Section(section, settings, out, ResultStore(out / "runs"))


def preflight(specs: list[RunSpec], *, store_root: str | Path | None = None, device: str | None = None) -> None:
    """Check every run of ``specs`` before any training (``preflight.check``): one error listing every problem,
    each with where to get the missing file or how to fix the setting."""
    from ..running.preflight import check

    check(specs, store_root=store_root, device=device)


def drop_oversized_shots(specs: list[RunSpec]) -> list[RunSpec]:
    """Remove N-shot runs whose N exceeds every class of the dataset (they equal the full-data run but for the
    batch size), unless the spec asks to run them as the paper did (``oversized="paper"``)."""
    from ..data import load_split
    from ..data.shots import largest_class

    largest: dict[str, int] = {}
    kept = []
    for spec in specs:
        if spec.n_shots is not None and spec.task in ("vp", "clip"):
            if spec.dataset not in largest:
                largest[spec.dataset] = largest_class(load_split(spec.dataset, "train").labels)
            if spec.n_shots > largest[spec.dataset] and spec.oversized != "paper":
                print(f"note: {spec.dataset} has at most {largest[spec.dataset]} training images per class; "
                      f"N={spec.n_shots} is the full-data run and is skipped")
                continue
        kept.append(spec)
    return kept


def has_shots(df: Any, shots: Any) -> Any:
    """Row mask: runs whose N-shot budget is one of ``shots`` (``None`` in the list: full data)."""
    wanted = [n for n in shots if n is not None]
    mask = df["n_shots"].isin(wanted)
    return mask | df["n_shots"].isna() if None in shots else mask


def upstream_points(models: list[str], *, substitute: bool = False) -> list[dict[str, Any]]:
    """Upstream top-1 and remaining weights per model for Fig. 14.

    The smoke profile's models carry their top-1 on the source task's held-out split (measured);
    models compressed here from real weights without ImageNet (the mini profile) carry their top-1
    agreement with the dense model on crops of the held-out photographs at 224 px (measured; the dense
    model is 100);
    registry models report the published number (``models.upstream`` measures it when given an
    ImageNet validation folder).
    """
    from ..models import create_model, get_entry
    from ..models.upstream import upstream_top1

    agreement = {n: create_model(n).provenance.get("agreement", {}).get("agreement_224")
                 for n in models if get_entry(n).source.startswith(("made here", "distilled here"))}
    measured_parents = {get_entry(n).parent for n, a in agreement.items() if a is not None}
    points = []
    for name in models:
        entry = get_entry(name)
        remaining = 100.0 * (1 - (entry.sparsity or 0.0))
        if entry.arch == "smallcnn":
            provenance = create_model(name).provenance
            points.append({"name": name, "remaining": remaining, "top1": provenance["source_top1"],
                           "kind": "measured"})
        elif agreement.get(name) is not None:
            points.append({"name": name, "remaining": remaining, "top1": agreement[name], "kind": "measured",
                           "quantity": "top-1 agreement with the dense model"})
        elif name in measured_parents:
            points.append({"name": name, "remaining": remaining, "top1": 100.0, "kind": "measured",
                           "quantity": "top-1 agreement with the dense model (itself)"})
        else:
            result = upstream_top1(name, substitute=substitute)
            points.append({"name": name, "remaining": remaining, "top1": result.get("top1"),
                           "kind": result.get("kind", "published")})
    return points


def accuracy_summary(df: Any, families: dict[str, Any]) -> Any:
    """Mean accuracy per (family, model, dataset, method, N) over seeds, with the drop from the dense model."""
    import pandas as pd

    rows = []
    for family, (dense, compressed) in families.items():
        part = df[df["model"].isin([dense, *compressed])].copy()
        if part.empty:
            continue
        part["shots"] = part["n_shots"].map(lambda n: "full" if pd.isna(n) else str(int(n)))
        mean = part.groupby(["model", "dataset", "method", "shots"], sort=False)["acc"].mean().reset_index()
        keys = ["dataset", "method", "shots"]
        dense_acc = mean[mean["model"] == dense].set_index(keys)["acc"].rename("dense_acc")
        mean = mean.join(dense_acc, on=keys)
        mean["drop_vs_dense"] = mean["dense_acc"] - mean["acc"]
        mean.insert(0, "family", family)
        rows.append(mean)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def calibration_summary(df: Any) -> Any:
    """Correct and paper-compatible calibration statistics per model, dataset and method (mean over seeds)."""
    columns = ["acc", "ece", "ece_paper_logit", "conf_correct", "kl_wrong_p_uniform", "kl_wrong_paper"]
    return df.groupby(["model", "dataset", "method"])[columns].mean().reset_index()


def records_for(store: ResultStore, df: Any, *, method: str, dataset: str, models: list[str]) -> list[dict]:
    """Full records of the first seed of each model for one dataset and method."""
    rows = df[(df["method"] == method) & (df["dataset"] == dataset) & df["model"].isin(models)]
    rows = rows.sort_values("seed").drop_duplicates("model")
    return [store.read(run_id) for run_id in rows.set_index("model").loc[[m for m in models if m in set(rows["model"])],
                                                                           "run_id"]]


def method_comparison(records: dict[RunSpec, dict[str, Any]], methods: list[str] | tuple[str, ...],
                      dense: str, sparse: str) -> Any:
    """Notebook 06, beyond the paper (issue #35): one row per (dataset, method), in ``methods``' order, with each
    model's accuracy and ECE and the dense-minus-sparse accuracy gap; the prompt-saving runs are left out."""
    import pandas as pd

    rows = []
    for spec, rec in records.items():
        if spec.method in methods and not spec.save_prompts and spec.model in (dense, sparse):
            role = "dense" if spec.model == dense else "sparse"
            rows.append({"dataset": spec.dataset, "method": spec.method, "role": role,
                         "acc": rec["metrics"]["acc"], "ece": rec["metrics"]["ece"]})
    if not rows:
        return pd.DataFrame(columns=["dataset", "method"])
    wide = pd.DataFrame(rows).pivot_table(index=["dataset", "method"], columns="role", values=["acc", "ece"])
    wide.columns = [f"{metric}_{role}" for metric, role in wide.columns]
    wide = wide.reset_index()
    wide["acc_gap"] = wide["acc_dense"] - wide["acc_sparse"]
    wide["method"] = pd.Categorical(wide["method"], categories=list(methods), ordered=True)
    wide = wide.sort_values(["dataset", "method"]).reset_index(drop=True)
    return wide.assign(method=wide["method"].astype(str))


def target_split(dataset: str) -> Any:
    """The test split of a target dataset (images for label-mapping figures)."""
    from ..data import load_split

    return load_split(dataset, "test")


def source_examples(model: str) -> Any:
    """A function giving one example image of a source class, or None where none is at hand (ImageNet)."""
    if not model.startswith("smallcnn/"):
        return None
    from ..data.synthetic import source_split
    from ..models.smallcnn import CANVAS

    examples = source_split("test", per_class=1, size=CANVAS, seed=7)
    by_class = {int(c): examples.images[i] for i, c in enumerate(examples.labels)}
    return lambda index: by_class.get(int(index))


def describe_gap(df: Any, families: dict[str, Any], method: str = "ilm") -> str:
    """One sentence on this run's transfer gap: mean (dense - compressed) accuracy, smallest and largest budget."""
    summary = accuracy_summary(df[df["method"] == method], families)
    if summary.empty:
        return f"This run has no {method} results to compare."
    dense_of = summary["family"].map(lambda f: families[f][0])
    compressed = summary[(summary["model"] != dense_of) & summary["drop_vs_dense"].notna()]
    order = sorted(compressed["shots"].unique(), key=lambda s: float("inf") if s == "full" else int(s))
    first, last = order[0], order[-1]
    gap = compressed.groupby("shots")["drop_vs_dense"].mean()
    return (f"This run ({method.upper()}-VP, mean over datasets and compressed models): dense minus compressed "
            f"accuracy is {gap[first]:+.1f} points at N={first} and {gap[last]:+.1f} at N={last}.")


def describe_trend(df: Any, families: dict[str, Any], metric: str, method: str = "ilm") -> str:
    """One sentence on how a statistic moves from the dense to the most compressed model (mean over datasets)."""
    parts = []
    for family, (dense, compressed) in families.items():
        rows = df[(df["method"] == method) & df["model"].isin([dense, compressed[-1]])]
        means = rows.groupby("model")[metric].mean()
        if dense in means and compressed[-1] in means:
            parts.append(f"{family}: {means[dense]:.3f} (dense) -> {means[compressed[-1]]:.3f} ({compressed[-1]})")
    return f"This run, {metric} ({method.upper()}-VP, mean over datasets): " + ("; ".join(parts) or "no results") + "."
