"""The hidden cost of *your* compressed model: one dense model, one or more compressed ones, any datasets.

``python -m vpcost_utils.report --dense A --compressed B [C ...] --datasets X [Y ...] --shots 1 10 full
--seeds 3`` (or notebook ``08_your_model``) runs the paper's protocol (ILM-VP, the reference's
hyperparameters) for every model, dataset, N-shot budget and seed through the result store (resumable:
a rerun skips finished runs; failures are recorded and listed), then writes
``<output_dir>/<name>/report.md`` and a self-contained ``report.html`` (figures embedded) that answer,
per dataset and N: how accurate is each model (mean and 95 % t-interval over seeds), is the dense minus
compressed gap beyond seed noise (paired by seed: a pair shares training and test images), does it
shrink with more data, is the compressed model worse calibrated, and (beyond the paper) does
temperature scaling, fitted on held-out training images, remove that calibration cost.

Every input is checked before any training: each model's output must be a K-way logit vector, each
dataset must have every class in both splits and enough training images per class for N plus the
held-out images.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from . import intervals
from ._io import atomic_write_bytes
from .config import RunSpec
from .errors import SpecError, VpcostError
from .store import ResultStore
from .tables import to_markdown

REPORT_METHOD = "ilm"


@dataclass(frozen=True)
class ReportConfig:
    """What one report compares. ``shots`` holds ints and None (the full training set)."""

    dense: str
    compressed: tuple[str, ...]
    datasets: tuple[str, ...]
    shots: tuple[int | None, ...] = (1, 10, None)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 100  # the paper's
    eval_every: int = 10
    holdout: int = 20  # training images per class held out to fit the temperature on
    canvas: int | None = None  # None: each model's own input size
    max_test: int | None = None  # None: the whole test split
    substitute: bool = False
    name: str | None = None  # report folder name; None: derived from the models
    # A fixed-width study (sequential.Target): each cell runs a pilot of ``pilot_seeds`` seeds, then as many
    # as Stein's rule needs for this half-width (accuracy points), at most ``max_seeds``; ``seeds`` is ignored.
    target_halfwidth: float | None = None
    max_seeds: int | None = None
    pilot_seeds: int = 5

    def __post_init__(self) -> None:
        for attr in ("compressed", "datasets", "shots", "seeds"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if self.target_halfwidth is not None:
            self.target  # noqa: B018  (validates the half-width, the pilot and the budget now, before any training)
            object.__setattr__(self, "seeds", tuple(range(self.max_seeds)))
        elif self.max_seeds is not None:
            raise SpecError("--max-seeds only applies with --target-halfwidth (a fixed-width study); for a fixed "
                            "number of seeds use --seeds")
        if not self.compressed:
            raise SpecError("a report needs at least one compressed model (--compressed)")
        if self.dense in self.compressed:
            raise SpecError(f"{self.dense!r} is both the dense model and a compressed one")
        if not self.datasets or not self.shots or not self.seeds:
            raise SpecError("a report needs at least one dataset, one N-shot budget and one seed")

    @classmethod
    def from_settings(cls, settings: dict[str, Any], name: str | None = None) -> ReportConfig:
        """From ``profiles.settings("your_model", profile, ...)`` (notebook 08's parameters)."""
        keys = ("dense", "compressed", "datasets", "shots", "seeds", "epochs", "eval_every", "holdout", "canvas",
                "max_test", "substitute")
        optional = {k: settings[k] for k in ("target_halfwidth", "max_seeds", "pilot_seeds") if
                    settings.get(k) is not None}
        return cls(**{k: settings[k] for k in keys}, **optional, name=name)

    @property
    def target(self):
        """The fixed-width study's ``sequential.Target``, or None for a fixed number of seeds."""
        from .sequential import Target

        if self.target_halfwidth is None:
            return None
        return Target(self.target_halfwidth, self.max_seeds if self.max_seeds is not None else 30, self.pilot_seeds)

    @property
    def models(self) -> tuple[str, ...]:
        return (self.dense, *self.compressed)

    @property
    def folder_name(self) -> str:
        if self.name:
            return self.name
        raw = "-vs-".join(m.rsplit("/", 1)[-1] if "/" in m else m for m in self.models)
        return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:80]

    def specs(self, seeds: dict[tuple[str, str, str], int] | int | None = None) -> list[RunSpec]:
        """The runs; ``seeds``: how many seeds each (model, dataset, shots) runs (a plan, or one count for all),
        default ``self.seeds``."""
        def count(model: str, dataset: str, n: int | None) -> range | tuple[int, ...]:
            if seeds is None:
                return self.seeds
            if isinstance(seeds, int):
                return range(seeds)
            return range(seeds.get((model, dataset, "full" if n is None else str(n)), 0))

        return [RunSpec(model, dataset, method=REPORT_METHOD, n_shots=n, seed=seed, epochs=self.epochs,
                        eval_every=self.eval_every, substitute=self.substitute, canvas=self.canvas,
                        max_test=self.max_test, holdout=self.holdout)
                for dataset in self.datasets for n in self.shots for model in self.models
                for seed in count(model, dataset, n)]


def parse_shots(values: Sequence[str | int | None]) -> tuple[int | None, ...]:
    """``["1", "10", "full"]`` -> ``(1, 10, None)``; anything else is an error naming the accepted forms."""
    out: list[int | None] = []
    for v in values:
        if v is None or str(v).lower() in ("full", "none", "all"):
            out.append(None)
            continue
        try:
            n = int(v)
        except ValueError:
            raise SpecError(f"N-shot budget {v!r} is neither a positive integer nor 'full'") from None
        if n < 1:
            raise SpecError(f"N-shot budget {n} must be >= 1 (or 'full')")
        out.append(n)
    return tuple(out)


# --- checks before any training ---------------------------------------------------------------------------------

def check_model(name: str, *, substitute: bool = False, canvas: int | None = None) -> dict[str, Any]:
    """Build ``name`` and check at the report's canvas that it maps images to ``[B, num_classes]`` logits
    (``models.external.check_output``, the check every outside model already passes at its own size)."""
    from .models import create_model
    from .models.external import check_output

    model = create_model(name, substitute=substitute)
    model.canvas_size = canvas or model.canvas_size
    check_output(model)
    return dict(model.provenance, canvas=model.canvas_size, num_classes=model.num_classes)


def check_dataset(name: str, shots: Sequence[int | None], holdout: int) -> dict[str, Any]:
    """Both splits load, share their classes, and every class has N + ``holdout`` training images."""
    import torch

    from .data import load_split

    train, test = load_split(name, "train"), load_split(name, "test")
    k = train.num_classes
    train_counts = torch.bincount(train.labels.long(), minlength=k)
    test_counts = torch.bincount(test.labels.long(), minlength=k)
    empty_test = [train.classes[c] for c in range(k) if c >= len(test_counts) or test_counts[c] == 0]
    if empty_test:
        raise SpecError(f"dataset {name!r}: no test images of class(es) {empty_test}; every class needs test images "
                        f"to measure accuracy per class")
    largest_n = max((n for n in shots if n is not None), default=0)
    need = largest_n + holdout + (1 if largest_n == 0 else 0)
    short = {train.classes[c]: int(train_counts[c]) for c in range(k) if train_counts[c] < need}
    if short:
        raise SpecError(f"dataset {name!r}: class(es) {short} have fewer than {need} training images (N={largest_n} "
                        f"plus {holdout} held out for temperature scaling); lower the largest N or --holdout, "
                        f"or add images")
    info = {"classes": k, "train_images": len(train), "test_images": len(test),
            "smallest_class": int(train_counts.min()), "input_size": train.input_size}
    if name.startswith("folder:"):  # the split and the content fingerprint of a user's folder
        from .data import get_dataset_info

        info["source"] = get_dataset_info(name).notes
    return info


# --- the analysis -----------------------------------------------------------------------------------------------

def accuracy_table(df: pd.DataFrame, config: ReportConfig, metric: str = "acc") -> pd.DataFrame:
    """Per dataset, N and model: mean of ``metric`` over seeds with its 95 % t-interval."""
    rows = []
    for (dataset, shots, model), part in df.groupby(["dataset", "shots", "model"], sort=False):
        mean, low, high = intervals.t_interval(part[metric].tolist())
        rows.append({"dataset": dataset, "shots": shots, "model": model, "role": _role(model, config),
                     "seeds": len(part), "mean": mean, "low": low, "high": high})
    return _ordered(pd.DataFrame(rows, columns=["dataset", "shots", "model", "role", "seeds", "mean", "low", "high"]),
                    config)


def gap_table(df: pd.DataFrame, config: ReportConfig, metric: str, *, compressed_minus_dense: bool = False,
              predictions: dict[str, Any] | None = None) -> pd.DataFrame:
    """Paired gap per compressed model, dataset and N (``intervals.paired_gaps``), dense minus compressed,
    or compressed minus dense (for ECE, where larger is worse). With ``predictions`` (run id -> per-image
    outcomes) the interval counts the test set; in a fixed-width study it is Stein's (the pilot's sd)."""
    table = df.assign(n_shots=df["n_shots"], method=REPORT_METHOD)
    pilot = config.pilot_seeds if config.target_halfwidth is not None else None
    gaps = intervals.paired_gaps(table, {"report": (config.dense, list(config.compressed))}, metric,
                                 predictions=predictions, pilot=pilot)
    if compressed_minus_dense:
        flipped = {"above 0": "below 0", "below 0": "above 0"}
        gaps = gaps.assign(gap=-gaps["gap"], gap_low=-gaps["gap_high"], gap_high=-gaps["gap_low"],
                           verdict=gaps["verdict"].map(lambda v: flipped.get(v, v)))
    gaps = gaps.drop(columns=["family", "dense", "method"])
    return _ordered(gaps, config)


def _role(model: str, config: ReportConfig) -> str:
    return "dense" if model == config.dense else "compressed"


def _shot_rank(label: str) -> float:
    return math.inf if label == "full" else float(label)


def _ordered(table: pd.DataFrame, config: ReportConfig) -> pd.DataFrame:
    if table.empty:
        return table.reset_index(drop=True)
    key = {"dataset": {d: i for i, d in enumerate(config.datasets)},
           "model": {m: i for i, m in enumerate(config.models)}}
    return table.sort_values(["dataset", "shots", "model"], key=lambda col: col.map(_shot_rank) if col.name == "shots"
                             else col.map(key[col.name])).reset_index(drop=True)


def _interval_text(mean: float, low: float, high: float, digits: int = 1) -> str:
    if math.isnan(low):
        return f"{mean:.{digits}f} (one seed: no interval)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def verdict_words(verdict: str, what: str = "accuracy") -> str:
    """An ``intervals.verdict`` of a dense-minus-compressed accuracy gap in the paper's terms."""
    if verdict == "above 0":
        return "compressed transfers worse"
    if verdict == "below 0":
        return "compressed transfers better"
    if verdict.startswith("within"):
        return f"no gap larger than {verdict.split()[-1]} points"
    return verdict


def verdicts(acc_gaps: pd.DataFrame, ece_gaps: pd.DataFrame, ece_ts_gaps: pd.DataFrame) -> list[str]:
    """One plain paragraph per (dataset, compressed model), in the paper's terms."""
    out = []
    for (dataset, model), part in acc_gaps.groupby(["dataset", "model"], sort=False):
        part = part.sort_values("shots", key=lambda c: c.map(_shot_rank))
        cells = [f"N={r.shots}: {r.gap:+.1f} points [{r.gap_low:+.1f}, {r.gap_high:+.1f}], {r.pairs} seeds, "
                 f"{verdict_words(r.verdict)}"
                 if not math.isnan(r.gap_low) else f"N={r.shots}: {r.gap:+.1f} points (one seed: no verdict)"
                 for r in part.itertuples()]
        worse = part[part["beyond_noise"] & (part["gap"] > 0)]
        better = part[part["beyond_noise"] & (part["gap"] < 0)]
        if len(worse):
            head = (f"**{model} on {dataset} pays an accuracy cost** beyond noise (seeds and test set) at N = "
                    f"{', '.join(worse['shots'])}")
        elif len(better):
            head = f"**{model} on {dataset} transfers better than the dense model** at N = {', '.join(better['shots'])}"
        elif (part["pairs"] < intervals.MIN_VERDICT_SEEDS).all():
            head = f"**{model} on {dataset}: no verdict** (fewer than {intervals.MIN_VERDICT_SEEDS} seeds)"
        else:
            head = f"**{model} on {dataset}: no accuracy gap beyond noise**"
        text = f"{head}. Dense minus compressed accuracy (paired by seed, 95 % interval): {'; '.join(cells)}."
        if len(part) >= 2 and len(worse):
            first, last = part.iloc[0], part.iloc[-1]
            trend = "shrinks" if abs(last.gap) < abs(first.gap) else "does not shrink"
            text += (f" The gap {trend} with more data (N={first.shots}: {first.gap:+.1f}, "
                     f"N={last.shots}: {last.gap:+.1f}).")
        text += " " + _calibration_sentence(ece_gaps, ece_ts_gaps, dataset, model)
        out.append(text)
    return out


def _calibration_sentence(ece_gaps: pd.DataFrame, ece_ts_gaps: pd.DataFrame, dataset: str, model: str) -> str:
    sel = (ece_gaps["dataset"] == dataset) & (ece_gaps["model"] == model)
    part = ece_gaps[sel]
    if part.empty:
        return ""
    worse = part[part["beyond_noise"] & (part["gap"] > 0)]
    better = part[part["beyond_noise"] & (part["gap"] < 0)]
    if len(worse):
        text = f"Calibration: ECE is worse than the dense model's beyond seed noise at N = {', '.join(worse['shots'])}"
    elif len(better):
        text = ("Calibration: ECE is better than the dense model's beyond seed noise at N = "
                f"{', '.join(better['shots'])}")
    else:
        text = "Calibration: no ECE difference beyond seed noise"
    text += f" (compressed minus dense ECE, mean over N: {100 * part['gap'].mean():+.1f} points)."
    ts = ece_ts_gaps[(ece_ts_gaps["dataset"] == dataset) & (ece_ts_gaps["model"] == model)]
    if ts.empty:
        return text
    text += f" After temperature scaling: {100 * ts['gap'].mean():+.1f} points"
    if len(worse):
        still = ts[ts["beyond_noise"] & (ts["gap"] > 0) & ts["shots"].isin(worse["shots"])]
        text += (f", still worse beyond seed noise at N = {', '.join(still['shots'])}: not fixable by a temperature."
                 if len(still) else ", within seed noise where it was worse: the calibration cost is fixable post hoc.")
    else:
        text += "."
    return text


# --- the report -------------------------------------------------------------------------------------------------

@dataclass
class Report:
    """Everything one report holds; ``write`` renders it to Markdown and HTML. The tables are computed once,
    on first use, from ``runs`` (which a report never changes)."""

    config: ReportConfig
    runs: pd.DataFrame  # one row per finished run
    models: dict[str, dict[str, Any]]
    datasets: dict[str, dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> record

    seed_plan: dict[tuple[str, str, str], int] | None = None  # fixed-width study: seeds per cell

    @cached_property
    def predictions(self) -> dict[str, Any]:
        return intervals.predictions_of(self.records)

    @cached_property
    def accuracy(self) -> pd.DataFrame:
        return accuracy_table(self.runs, self.config, "acc")

    @cached_property
    def acc_gaps(self) -> pd.DataFrame:
        return gap_table(self.runs, self.config, "acc", predictions=self.predictions)

    @cached_property
    def ece_gaps(self) -> pd.DataFrame:
        return gap_table(self.runs, self.config, "ece", compressed_minus_dense=True, predictions=self.predictions)

    @cached_property
    def ece_ts_gaps(self) -> pd.DataFrame:
        # per-image outcomes are of the untempered logits: the test term is not counted after scaling
        return gap_table(self.runs, self.config, "ece_temp_scaled", compressed_minus_dense=True)

    def calibration(self) -> pd.DataFrame:
        """Per dataset, N and model: mean ECE before and after temperature scaling, and the mean temperature."""
        agg = self.runs.groupby(["dataset", "shots", "model"], sort=False).agg(
            seeds=("seed", "count"), ece=("ece", "mean"), ece_temp_scaled=("ece_temp_scaled", "mean"),
            temperature=("temperature", "mean"), nll=("nll", "mean"), nll_temp_scaled=("nll_temp_scaled", "mean"))
        return _ordered(agg.reset_index(), self.config)

    def verdicts(self) -> list[str]:
        return verdicts(self.acc_gaps, self.ece_gaps, self.ece_ts_gaps)

    def figures(self) -> dict[str, Any]:
        from . import plots
        from .plots.report import gap_figure

        labels = {m: ("dense: " if m == self.config.dense else "") + m for m in self.config.models}
        figs = {
            "accuracy": plots.accuracy_vs_shots(self.runs, list(self.config.models), list(self.config.datasets),
                                                REPORT_METHOD, labels=labels, title="Test accuracy vs N-shot "
                                                "(mean and 95 % t-interval over seeds)"),
            "accuracy_gap": gap_figure(self.acc_gaps, list(self.config.datasets), "dense minus compressed accuracy "
                                       "(points)"),
            "ece_gap": gap_figure(_in_points(self.ece_gaps), list(self.config.datasets),
                                  "compressed minus dense ECE (points)", after=_in_points(self.ece_ts_gaps)),
        }
        reliability = self._reliability_records()
        if reliability:
            figs["reliability"] = plots.reliability_diagram([r for r, _ in reliability],
                                                            labels=[label for _, label in reliability],
                                                            ncols=min(4, len(reliability)))
        return figs

    def _reliability_records(self) -> list[tuple[dict[str, Any], str]]:
        """Seed 0 (the lowest seed) at the largest N of the first dataset: each model before and after scaling."""
        if self.runs.empty:
            return []
        dataset = self.config.datasets[0]
        shots = max(self.runs["shots"].unique(), key=_shot_rank)
        seed = min(self.config.seeds)
        out = []
        for model in self.config.models:
            row = self.runs[(self.runs["dataset"] == dataset) & (self.runs["shots"] == shots)
                            & (self.runs["model"] == model) & (self.runs["seed"] == seed)]
            if row.empty:
                continue
            rec = self.records[row.iloc[0]["run_id"]]
            out.append((rec, f"{model}\n{dataset}, N={shots}, seed {seed}"))
            m = rec["metrics"]
            if "reliability_temp_scaled" in m:
                scaled = {"metrics": {"reliability": m["reliability_temp_scaled"], "ece": m["ece_temp_scaled"]}}
                out.append((scaled, f"{model}, T={m['temperature']:.2f}\n{dataset}, N={shots}, temperature-scaled"))
        return out

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Writes ``report.md``, ``report.html``, ``figures/*.png``, ``runs.csv``, ``summary.json`` atomically."""
        import json

        folder = Path(folder)
        pngs = {name: _png(fig) for name, fig in self.figures().items()}
        paths = {}
        for name, data in pngs.items():
            paths[f"fig_{name}"] = folder / "figures" / f"{name}.png"
            atomic_write_bytes(paths[f"fig_{name}"], data)
        blocks = self._blocks(set(pngs))
        paths["markdown"] = folder / "report.md"
        atomic_write_bytes(paths["markdown"], _markdown(blocks).encode())
        paths["html"] = folder / "report.html"
        atomic_write_bytes(paths["html"], _html(blocks, pngs, title=f"Hidden cost report: {self.config.folder_name}")
                           .encode())
        paths["runs"] = folder / "runs.csv"
        atomic_write_bytes(paths["runs"], self.runs.to_csv(index=False).encode())
        summary = {"config": asdict(self.config), "models": self.models, "datasets": self.datasets,
                   "accuracy": self.accuracy.to_dict("records"), "accuracy_gaps": self.acc_gaps.to_dict("records"),
                   "ece_gaps": self.ece_gaps.to_dict("records"),
                   "ece_temp_scaled_gaps": self.ece_ts_gaps.to_dict("records"),
                   "calibration": self.calibration().to_dict("records"), "verdicts": self.verdicts(),
                   "interval_rule": self.config.target.rule if self.config.target else
                   "Student t over seeds (k - 1 df) with the test set's variance added",
                   "seed_plan": [{"model": k[0], "dataset": k[1], "shots": k[2], "seeds": n}
                                 for k, n in (self.seed_plan or {}).items()],
                   "failures": [{k: f[k] for k in ("run_id", "error")} for f in self.failures]}
        paths["summary"] = folder / "summary.json"
        atomic_write_bytes(paths["summary"], json.dumps(summary, indent=1, default=_json_default).encode())
        return paths

    def _blocks(self, figures: set[str]) -> list[tuple[str, Any]]:
        c = self.config
        shots = ", ".join("full" if n is None else str(n) for n in c.shots)
        env = next(iter(self.records.values()), {}).get("env", {})
        rule = (f"Stein two-stage: a pilot of {c.pilot_seeds} seeds decides each cell's seeds, target +-"
                f"{c.target_halfwidth:g} points" if c.target else "Student t over seeds, the test set's variance added")
        b: list[tuple[str, Any]] = [
            ("h1", f"Hidden cost report: {c.folder_name}"),
            ("p", f"Dense model **{c.dense}** against {', '.join(f'**{m}**' for m in c.compressed)} on "
                  f"{', '.join(c.datasets)}; N-shot budgets {shots}; seeds {', '.join(map(str, c.seeds))}. "
                  f"Protocol: ILM-VP as the paper ran it (Adam lr 0.01, {c.epochs} epochs, batch size by N as in "
                  f"its Table 5, frozen backbone); intervals are 95 % and count the seeds and the finite test set "
                  f"({rule}); "
                  f"dense-compressed pairs share seed, training images, batch order and test images; no verdict "
                  f"below {intervals.MIN_VERDICT_SEEDS} seeds. {c.holdout} training images per class are held "
                  f"out (seeded, before the N-shot draw, the same for every model) to fit each run's temperature; "
                  f"they are neither trained on nor tested on."),
            ("p", f"{len(self.runs)} runs; {len(self.failures)} failed. Made "
                  f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with vpcost "
                  f"{env.get('versions', {}).get('vpcost_utils', '?')} (commit {env.get('git_commit', '?')}) on "
                  f"{env.get('device', '?')}."),
            ("h2", "Verdict"),
            ("ul", self.verdicts() or ["No paired runs finished: nothing to compare."]),
            ("h2", "Accuracy"),
            ("fig", "accuracy"),
            ("table", _fmt_intervals(self.accuracy, "test accuracy (%)")),
            ("h2", "The gap, paired by seed"),
            ("p", "Positive: the compressed model transfers worse. Each cell ends in one of three verdicts: the "
                  "interval lies above 0 (compressed worse), below 0 (compressed better), or it holds 0 and so rules "
                  "out any gap larger than its farther end. 'Min. detectable' is the true gap this design finds "
                  "with 80 % power."),
            ("fig", "accuracy_gap"),
            ("table", _fmt_gaps(self.acc_gaps)),
            ("h2", "Calibration and temperature scaling"),
            ("p", "ECE: 15 equal-width confidence bins of the softmax over the K mapped logits, in points (x100). "
                  "Temperature scaling divides the mapped logits by one T per run, fitted by NLL on the held-out "
                  "images; accuracy is unchanged. Positive ECE gap: the compressed model is worse calibrated."),
            ("fig", "ece_gap"),
            ("table", _fmt_calibration(self.calibration())),
            ("p", "ECE gap (compressed minus dense) before temperature scaling:"),
            ("table", _fmt_gaps(_in_points(self.ece_gaps))),
            ("p", "and after:"),
            ("table", _fmt_gaps(_in_points(self.ece_ts_gaps))),
        ]
        if "reliability" in figures:
            b += [("h3", "Reliability diagrams"), ("fig", "reliability")]
        b += [("h2", "Models"), ("table", _provenance_table(self.models)),
              ("h2", "Datasets"), ("table", pd.DataFrame([{"dataset": k, **v} for k, v in self.datasets.items()]))]
        if self.failures:
            b += [("h2", "Failed runs"),
                  ("table", pd.DataFrame([{"run_id": f["run_id"], "model": f["spec"]["model"],
                                           "dataset": f["spec"]["dataset"], "error": f["error"]}
                                          for f in self.failures]))]
        return b


def _in_points(gaps: pd.DataFrame) -> pd.DataFrame:
    """An ECE gap table (fractions) in points, as the report shows ECE."""
    return gaps.assign(**{c: 100 * gaps[c] for c in ("gap", "gap_low", "gap_high", "halfwidth", "mde")})


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _fmt_intervals(table: pd.DataFrame, what: str) -> pd.DataFrame:
    return pd.DataFrame({"dataset": table["dataset"], "N": table["shots"], "model": table["model"],
                         "seeds": table["seeds"],
                         f"{what}, mean [95 % CI]": [_interval_text(r.mean, r.low, r.high)
                                                    for r in table.itertuples()]})


def _fmt_gaps(gaps: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dataset": gaps["dataset"], "N": gaps["shots"], "compressed": gaps["model"],
                         "pairs": gaps["pairs"],
                         "gap [95 % CI]": [_interval_text(r.gap, r.gap_low, r.gap_high)
                                           for r in gaps.itertuples()],
                         "half-width": gaps["halfwidth"].round(2), "min. detectable (80 %)": gaps["mde"].round(2),
                         "test set": gaps["test_noise"].map(lambda t: "counted" if t == "counted" else "not counted"),
                         "verdict": gaps["verdict"]})


def _fmt_calibration(cal: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dataset": cal["dataset"], "N": cal["shots"], "model": cal["model"], "seeds": cal["seeds"],
                         "ECE (points)": (100 * cal["ece"]).round(2),
                         "ECE after T-scaling": (100 * cal["ece_temp_scaled"]).round(2),
                         "mean T": cal["temperature"].round(3), "NLL": cal["nll"].round(3),
                         "NLL after T-scaling": cal["nll_temp_scaled"].round(3)})


def _provenance_table(models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    keys = ("substitute", "measured_sparsity", "bits", "canvas", "num_classes", "source", "sha256")
    rows = [{"model": name, **{k: prov.get(k) for k in keys if k in prov}} for name, prov in models.items()]
    return pd.DataFrame(rows)


def _markdown(blocks: list[tuple[str, Any]]) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + value)
        elif kind == "p":
            out.append(value)
        elif kind == "ul":
            out.append("\n".join(f"- {v}" for v in value))
        elif kind == "fig":
            out.append(f"![{value}](figures/{value}.png)")
        elif kind == "table":
            out.append(to_markdown(value).rstrip() if not value.empty else "_none_")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _html(blocks: list[tuple[str, Any]], pngs: dict[str, bytes], *, title: str) -> str:
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(value)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(v)}</li>" for v in value) + "</ul>")
        elif kind == "fig" and value in pngs:
            data = base64.b64encode(pngs[value]).decode()
            body.append(f'<img alt="{value}" src="data:image/png;base64,{data}">')
        elif kind == "table":
            body.append(value.to_html(index=False, na_rep="", border=0) if not value.empty else "<p><em>none</em></p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


# --- running it -------------------------------------------------------------------------------------------------

def preflight(config: ReportConfig) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Check every model and dataset before anything trains; returns their provenance."""
    models = {m: check_model(m, substitute=config.substitute, canvas=config.canvas) for m in config.models}
    classes = {m: p["num_classes"] for m, p in models.items()}
    if len(set(classes.values())) > 1:
        raise SpecError(f"the models do not share one output space: {classes}; a dense/compressed pair must "
                        f"predict the same classes for their label mappings to be comparable")
    datasets = {d: check_dataset(d, config.shots, config.holdout) for d in config.datasets}
    # the prompt pads each image into the model's canvas: an image larger than the canvas cannot be prompted
    too_big = [f"{d} ({info['input_size']} px) into {m} ({prov['canvas']}-px canvas)"
               for d, info in datasets.items() for m, prov in models.items() if info["input_size"] > prov["canvas"]]
    if too_big:
        raise SpecError("images larger than the model's canvas cannot be prompted: " + "; ".join(too_big)
                        + ". Raise --canvas, or decode the images smaller (folder:PATH?size=S with S at most the "
                          "canvas)")
    return models, datasets


def collect(config: ReportConfig, store: ResultStore, seeds: dict[tuple[str, str, str], int] | int | None = None
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
    from .sweep import run_grid

    models, datasets = preflight(config)
    store = ResultStore(Path(output_dir) / "runs")
    target, plan = config.target, None
    if target is None:
        result = run_grid(config.specs(), store, runner=runner, device=device, progress=progress, on_error="continue")
    else:  # stage 1: the pilot; stage 2: what Stein's rule says each cell needs, decided by the pilot alone
        from .sequential import check_budget, seed_plan, seeds_needed

        result = run_grid(config.specs(target.pilot), store, runner=runner, device=device, progress=progress,
                          on_error="continue")
        runs, records = collect(config, store, target.pilot)
        needed = seeds_needed(runs, intervals.predictions_of(records), config.dense, config.compressed, target)
        check_budget(needed, target)
        plan = seed_plan(needed, config.dense)
        if progress:
            print("seeds per cell (Stein, pilot of", target.pilot, "):",
                  ", ".join(f"{m} {d} N={n}: {k}" for (m, d, n), k in plan.items()), flush=True)
        more = run_grid(config.specs(plan), store, runner=runner, device=device, progress=progress,
                        on_error="continue")
        result.failures += more.failures
    runs, records = collect(config, store, plan)
    return Report(config, runs, models, datasets, failures=result.failures, records=records, seed_plan=plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dense", required=True, help="the uncompressed model: a registry name (resnet50/dense), "
                        "timm:NAME, torchvision:ARCH.WEIGHTS or file:PATH?arch=ARCH")
    parser.add_argument("--compressed", nargs="+", required=True, help="one or more compressed models, same forms")
    parser.add_argument("--datasets", nargs="+", required=True, help="registry datasets or folder:PATH")
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
        shots = parse_shots(args.shots)
    except VpcostError as exc:
        parser.error(str(exc))
    try:
        config = ReportConfig(dense=args.dense, compressed=tuple(args.compressed), datasets=tuple(args.datasets),
                              shots=shots, seeds=tuple(range(args.seeds)), epochs=args.epochs,
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
