"""Fixed-width studies: a pilot of seeds decides how many seeds each cell needs for a target half-width.

``Target(halfwidth=3, max_seeds=30, pilot=5)``: every cell (compressed model, dataset, N) first runs
the pilot's seeds 0..n0-1 (dense and compressed); ``seeds_needed`` reads the pilot's paired gaps and
the test set's variance and applies Stein's rule (``intervals.stein_seeds``); each cell then runs
exactly that many seeds, independently of the others, and its interval is Stein's (the pilot's sd
and t). A cell that needs more than ``max_seeds`` (or that no number of seeds can bring under the
target, because the test set alone is too noisy) is refused before the second stage, with the seeds
it would need; the pilot's records stay, so a rerun with a larger ``max_seeds`` starts from them.
The dense model runs as many seeds as its most demanding compressed partner on that dataset and N.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import SpecError
from . import intervals


@dataclass(frozen=True)
class Target:
    """A half-width every cell's 95 % interval must reach, with the seed budget and the pilot's size."""

    halfwidth: float
    max_seeds: int
    pilot: int = 5

    def __post_init__(self) -> None:
        h = self.halfwidth
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
            raise SpecError(f"target half-width must be a positive number of points, got {h!r}")
        if not isinstance(self.pilot, int) or self.pilot < intervals.MIN_VERDICT_SEEDS:
            raise SpecError(f"the pilot needs at least {intervals.MIN_VERDICT_SEEDS} seeds (no verdict below that), "
                            f"got {self.pilot!r}")
        if not isinstance(self.max_seeds, int) or self.max_seeds < self.pilot:
            raise SpecError(f"max seeds ({self.max_seeds!r}) is smaller than the pilot ({self.pilot}): raise "
                            f"--max-seeds to at least {self.pilot} or shrink the pilot")

    @property
    def rule(self) -> str:
        return f"Stein two-stage, pilot n0={self.pilot}, target half-width {self.halfwidth:g}, at most " \
               f"{self.max_seeds} seeds"


def seeds_needed(runs: pd.DataFrame, predictions: Mapping[str, Mapping[str, np.ndarray]], dense: str,
                 compressed: Sequence[str], target: Target, metric: str = "acc") -> pd.DataFrame:
    """Per (model, dataset, shots): the pilot's gap sd, the test set's se, and the seeds Stein's rule needs.

    ``runs``: one row per run (``run_id, model, dataset, shots, seed, <metric>``), pilot seeds present.
    ``needed`` is None where no seed count reaches the target.
    """
    rows = []
    pilot = runs[runs["seed"] < target.pilot]
    for (dataset, shots), cell in pilot.groupby(["dataset", "shots"], sort=False):
        base = cell[cell["model"] == dense].set_index("seed")
        for model in compressed:
            other = cell[cell["model"] == model].set_index("seed")
            seeds = sorted(set(base.index) & set(other.index))
            if len(seeds) < target.pilot:
                continue
            gaps = (base.loc[seeds, metric] - other.loc[seeds, metric]).to_numpy(dtype=float)
            ids = [(base.loc[s, "run_id"], other.loc[s, "run_id"]) for s in seeds]
            test_var = 0.0
            if all(a in predictions and b in predictions for a, b in ids):
                test_var = intervals.test_set_variance([predictions[a] for a, _ in ids],
                                                       [predictions[b] for _, b in ids], metric)
            rows.append({"model": model, "dataset": dataset, "shots": shots, "pilot_sd": float(gaps.std(ddof=1)),
                         "test_se": math.sqrt(test_var),
                         "needed": intervals.stein_seeds(gaps, target.halfwidth, test_var)})
    return pd.DataFrame(rows, columns=["model", "dataset", "shots", "pilot_sd", "test_se", "needed"])


def check_budget(needed: pd.DataFrame, target: Target) -> None:
    """Refuse, before the second stage, every cell the seed budget cannot bring under the target."""
    problems = []
    for r in needed.itertuples():
        if r.needed is None or (isinstance(r.needed, float) and math.isnan(r.needed)):
            problems.append(f"{r.model} on {r.dataset} N={r.shots}: the test set's own error (se {r.test_se:.2f}) "
                            f"is too large for +-{target.halfwidth:g} at any number of seeds; use more test images "
                            f"(--max-test) or a wider target")
        elif r.needed > target.max_seeds:
            problems.append(f"{r.model} on {r.dataset} N={r.shots}: needs {int(r.needed)} seeds (pilot gap sd "
                            f"{r.pilot_sd:.2f}), more than --max-seeds {target.max_seeds}")
    if problems:
        raise SpecError("the target half-width is out of the seed budget (the pilot's records are kept; rerun "
                        "with a larger --max-seeds or a wider --target-halfwidth):\n  " + "\n  ".join(problems))


def seed_plan(needed: pd.DataFrame, dense: str) -> dict[tuple[str, str, str], int]:
    """(model, dataset, shots) -> seeds to run; the dense model's is its most demanding partner's."""
    plan: dict[tuple[str, str, str], int] = {}
    for r in needed.itertuples():
        n = int(r.needed)
        plan[(r.model, r.dataset, r.shots)] = n
        key = (dense, r.dataset, r.shots)
        plan[key] = max(plan.get(key, 0), n)
    return plan


def planned_seeds(halfwidth: float, sd: float, pilot: int = 5, test_se: float = 0.0) -> int | None:
    """Seeds per cell Stein's rule asks for when the pilot's sd comes out at ``sd`` (its expected value for
    a true sd of ``sd``); None where the test set alone is wider than the target."""
    from scipy import stats

    t = float(stats.t.ppf(0.975, pilot - 1))
    room = (halfwidth / t) ** 2 - test_se ** 2
    return max(pilot, math.ceil(sd ** 2 / room)) if room > 0 else None


def resolvable(sd: float, seeds: int, test_se: float = 0.0) -> tuple[float, float]:
    """(95 % half-width, minimum gap detectable at 80 % power) of a fixed design of ``seeds`` seeds."""
    from scipy import stats

    se = math.sqrt(sd ** 2 / seeds + test_se ** 2)
    df = seeds - 1
    return float(stats.t.ppf(0.975, df)) * se, (float(stats.t.ppf(0.975, df)) + float(stats.t.ppf(0.8, df))) * se
