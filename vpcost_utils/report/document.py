"""``Report``: the tables, figures, verdicts and provenance of one finished report, and ``write``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write_bytes
from ..stats import intervals
from .analysis import _in_points, _ordered, _shot_rank, accuracy_table, gap_table, verdicts
from .render import (
    _fmt_calibration,
    _fmt_gaps,
    _fmt_intervals,
    _html,
    _json_default,
    _markdown,
    _png,
    _provenance_table,
)
from .report_config import ReportConfig, method_label


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

    seed_plan: dict[tuple[str, str, str, str], int] | None = None  # fixed-width study: seeds per (model, dataset,
    # shots, method)

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
        """Per dataset, N, method and model: mean ECE before and after temperature scaling, and the mean
        temperature."""
        agg = self.runs.groupby(["dataset", "shots", "method", "model"], sort=False).agg(
            seeds=("seed", "count"), ece=("ece", "mean"), ece_temp_scaled=("ece_temp_scaled", "mean"),
            temperature=("temperature", "mean"), nll=("nll", "mean"), nll_temp_scaled=("nll_temp_scaled", "mean"))
        return _ordered(agg.reset_index(), self.config)

    def verdicts(self) -> list[str]:
        return verdicts(self.acc_gaps, self.ece_gaps, self.ece_ts_gaps)

    def figures(self) -> dict[str, Any]:
        from .. import plots
        from ..plots.report_figures import gap_figure

        labels = {m: ("dense: " if m == self.config.dense else "") + m for m in self.config.models}
        methods = ", ".join(method_label(m) for m in self.config.methods)
        figs = {
            "accuracy": plots.accuracy_vs_shots(self.runs, list(self.config.models), list(self.config.datasets),
                                                list(self.config.methods), labels=labels, title="Test accuracy vs "
                                                f"N-shot ({methods}; mean and 95 % t-interval over seeds)"),
            "accuracy_gap": gap_figure(_per_method(self.acc_gaps), list(self.config.datasets),
                                       "dense minus compressed accuracy (points)"),
            "ece_gap": gap_figure(_per_method(_in_points(self.ece_gaps)), list(self.config.datasets),
                                  "compressed minus dense ECE (points)",
                                  after=_per_method(_in_points(self.ece_ts_gaps))),
        }
        reliability = self._reliability_records()
        if reliability:
            figs["reliability"] = plots.reliability_diagram([r for r, _ in reliability],
                                                            labels=[label for _, label in reliability],
                                                            ncols=min(4, len(reliability)))
        return figs

    def _reliability_records(self) -> list[tuple[dict[str, Any], str]]:
        """Seed 0 (the lowest seed) at the largest N of the first dataset: each method and model before and after
        scaling."""
        if self.runs.empty:
            return []
        dataset = self.config.datasets[0]
        shots = max(self.runs["shots"].unique(), key=_shot_rank)
        seed = min(self.config.seeds)
        out = []
        for method in self.config.methods:
            for model in self.config.models:
                row = self.runs[(self.runs["dataset"] == dataset) & (self.runs["shots"] == shots)
                                & (self.runs["method"] == method) & (self.runs["model"] == model)
                                & (self.runs["seed"] == seed)]
                if row.empty:
                    continue
                rec = self.records[row.iloc[0]["run_id"]]
                how = method_label(method)
                out.append((rec, f"{model}, {how}\n{dataset}, N={shots}, seed {seed}"))
                m = rec["metrics"]
                if "reliability_temp_scaled" in m:
                    scaled = {"metrics": {"reliability": m["reliability_temp_scaled"], "ece": m["ece_temp_scaled"]}}
                    out.append((scaled, f"{model}, {how}, T={m['temperature']:.2f}\n{dataset}, N={shots}, "
                                        "temperature-scaled"))
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
                   "seed_plan": [{"model": k[0], "dataset": k[1], "shots": k[2], "method": k[3], "seeds": n}
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
                  f"{', '.join(c.datasets)}; methods {', '.join(method_label(m) for m in c.methods)}; N-shot "
                  f"budgets {shots}; seeds {', '.join(map(str, c.seeds))}. "
                  f"Protocol: {_protocol(c.methods)} as the paper ran them (Adam lr 0.01, {c.epochs} epochs, "
                  f"batch size by N as in its Table 5, frozen backbone); every table, figure and verdict is per "
                  f"method, and a dense-compressed pair shares its method; intervals are 95 % and count the seeds "
                  f"and the finite test set "
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


def _per_method(gaps: pd.DataFrame) -> pd.DataFrame:
    """A gap table whose figure series are (model, method): ``gap_figure`` draws one series per ``model``."""
    if gaps.empty or "method" not in gaps.columns:
        return gaps
    return gaps.assign(model=[f"{r.model} ({method_label(r.method)})" for r in gaps.itertuples()])


def _protocol(methods: tuple[str, ...]) -> str:
    parts = [f"{method_label(m)}" for m in methods if m != "lp"]
    if "lp" in methods:
        parts.append("LP (a new linear head on the frozen penultimate features, cached per image, the authors' "
                     "linear_probing.py)")
    return " and ".join(parts)
