"""What one report compares: ``ReportConfig`` (models, datasets, transfer methods, N-shot budgets, seeds or a target
width)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import METHODS, RunSpec
from ..errors import SpecError, check_choice

#: The transfer methods a report can run: the paper's three VP label mappings, the mappings beyond the paper
#: (issue #35: BLM, BLM+, AutoVP's FullyMap; vp/label_mapping.py) and the linear probe (probe/). Named here, not
#: taken from ``config.METHODS["vp"]``, so a method added later joins the report deliberately.
REPORT_METHODS: tuple[str, ...] = ("rlm", "flm", "ilm", "blm", "blm+", "fullymap", "lp")
assert set(REPORT_METHODS) <= set(METHODS["vp"])
#: By default ILM-VP (the paper's protocol) and the linear probe beside it: LP trains a head on cached features, a
#: few seconds a run, and sees costs that VP's seed noise hides (issue 33).
DEFAULT_METHODS: tuple[str, ...] = ("ilm", "lp")
METHOD_LABELS = {"rlm": "RLM-VP", "flm": "FLM-VP", "ilm": "ILM-VP", "blm": "BLM-VP", "blm+": "BLM+-VP",
                 "fullymap": "FullyMap-VP", "lp": "LP"}
assert set(METHOD_LABELS) == set(REPORT_METHODS)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def parse_methods(values: Sequence[str]) -> tuple[str, ...]:
    """``["ilm", "lp"]`` -> ``("ilm", "lp")`` in the given order, repeats dropped; an unknown name raises
    ``UnknownNameError`` listing the known ones."""
    if isinstance(values, str):
        values = values.split()
    out = tuple(dict.fromkeys(check_choice("report method", str(v).lower(), REPORT_METHODS) for v in values))
    if not out:
        raise SpecError(f"a report needs at least one method (--methods), any of {' '.join(REPORT_METHODS)}")
    return out


@dataclass(frozen=True)
class ReportConfig:
    """What one report compares. ``shots`` holds ints and None (the full training set)."""

    dense: str
    compressed: tuple[str, ...]
    datasets: tuple[str, ...]
    methods: tuple[str, ...] = DEFAULT_METHODS  # any of REPORT_METHODS; every table, figure and verdict is per method
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
        object.__setattr__(self, "methods", parse_methods(self.methods))
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
        keys = ("dense", "compressed", "datasets", "methods", "shots", "seeds", "epochs", "eval_every", "holdout",
                "canvas", "max_test", "substitute")
        optional = {k: settings[k] for k in ("target_halfwidth", "max_seeds", "pilot_seeds") if
                    settings.get(k) is not None}
        return cls(**{k: settings[k] for k in keys}, **optional, name=name)

    @property
    def target(self):
        """The fixed-width study's ``sequential.Target``, or None for a fixed number of seeds."""
        from ..stats.sequential import Target

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

    def specs(self, seeds: dict[tuple[str, str, str, str], int] | int | None = None) -> list[RunSpec]:
        """The runs, every method's; ``seeds``: how many seeds each (model, dataset, shots, method) runs (a plan,
        or one count for all), default ``self.seeds``."""
        def count(model: str, dataset: str, n: int | None, method: str) -> range | tuple[int, ...]:
            if seeds is None:
                return self.seeds
            if isinstance(seeds, int):
                return range(seeds)
            return range(seeds.get((model, dataset, "full" if n is None else str(n), method), 0))

        return [RunSpec(model, dataset, method=method, n_shots=n, seed=seed, epochs=self.epochs,
                        eval_every=self.eval_every, substitute=self.substitute, canvas=self.canvas,
                        max_test=self.max_test, holdout=self.holdout)
                for dataset in self.datasets for n in self.shots for method in self.methods for model in self.models
                for seed in count(model, dataset, n, method)]


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
