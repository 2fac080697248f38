"""A profile's runs: ``profile_runs(profile)``, ``section_runs(section, profile, **overrides)``.

``section_runs`` is the one path from a profile to its runs: it resolves the section's typed settings
(``profiles.resolve``) and hands them to the grid builder, which reads each section's own dataclass
(no branching on names). ``reproduce``, ``plan``, ``sweep --dry-run``, ``rehearse``, the studies and the
notebooks all call it, so they list the same runs (tests/test_plan.py checks that they do).
"""

from __future__ import annotations

import itertools
from typing import Any

from . import profiles
from .config import RunSpec
from .profiles import Calibration, Clip, Common, CrossModal, LabelMapping, Quantization, Resolved, SparseTransfer


def grid(**axes: Any) -> list[RunSpec]:
    """The cartesian product of the given RunSpec fields; a scalar is a one-value axis.

    ``grid(model=["a/dense", "a/x"], dataset="d", method=["flm", "ilm"], n_shots=[1, None])``
    """
    names = list(axes)
    values = [v if isinstance(v, (list, tuple)) else [v] for v in axes.values()]
    return [RunSpec(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*values)]


def family_models(families: dict[str, Any]) -> list[str]:
    """Every model of a {family: (dense, [compressed...])} dict, dense first, without repeats."""
    seen: dict[str, None] = {}
    for dense, compressed in families.values():
        seen.setdefault(dense)
        for name in compressed:
            seen.setdefault(name)
    return list(seen)


def prompt_epochs(epochs: int, count: int = 10) -> tuple[int, ...]:
    """About ``count`` evenly spaced epochs (the first and the last included) at which to save the prompt."""
    step = max(1, epochs // count)
    return tuple(sorted({1, *range(step, epochs + 1, step), epochs}))


def section_runs(section: str, profile: str, **overrides: Any) -> list[RunSpec]:
    """All runs of one notebook section on ``profile`` (``overrides``: the notebook's parameters); a list, in the
    grid's order, empty for sections that train nothing."""
    return _build(profiles.resolve(section, profile, **overrides))


def profile_runs(profile: str, sections: Any = None) -> dict[str, list[RunSpec]]:
    """The unique runs of each notebook section of ``profile`` (a run shared by sections counts once, first)."""
    seen: set[str] = set()
    out: dict[str, list[RunSpec]] = {}
    for section in sections or profiles.SECTIONS:
        out[section] = []
        for spec in section_runs(section, profile):
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                out[section].append(spec)
    return out


def _vp(s: Any, c: Common, models: list[str], methods: Any, shots: Any, **extra: Any) -> list[RunSpec]:
    return grid(model=models, dataset=list(s.datasets), method=list(methods), n_shots=list(shots),
                seed=list(s.seeds), epochs=s.epochs, eval_every=s.eval_every,
                substitute=c.substitute, canvas=c.canvas, max_test=c.max_test,
                oversized=c.oversized, **extra)


def _build(resolved: Resolved) -> list[RunSpec]:
    """The grid builder: the runs of one resolved section, by its type."""
    s, c = resolved.section, resolved.common
    if isinstance(s, (SparseTransfer, Quantization)):
        return _vp(s, c, family_models(s.families), s.methods, s.shots)
    if isinstance(s, Calibration):
        return (_vp(s, c, family_models(s.sparse_families), s.methods, s.shots)
                + _vp(s, c, family_models(s.quant_families), ["ilm"], s.quant_shots or s.shots))
    if isinstance(s, LabelMapping):
        base = dict(method="ilm", n_shots=s.shots[0], seed=s.seeds[0], epochs=s.epochs,
                    eval_every=s.eval_every, substitute=c.substitute, canvas=c.canvas,
                    max_test=c.max_test)
        pairs = grid(model=[s.dense, s.sparse, *s.quant_pair], dataset=list(s.datasets), **base)
        prompts = grid(model=[s.dense, *s.prompt_pair], dataset=s.prompt_dataset,
                       save_prompts=[prompt_epochs(s.epochs)], **base)
        compared = [] if not s.compare_methods else grid(
            model=[s.dense, s.sparse], dataset=list(s.datasets), **{**base, "method": list(s.compare_methods)})
        return pairs + prompts + [x for x in compared if x not in pairs]
    if isinstance(s, Clip):
        return grid(task="clip", model=list(s.models), dataset=list(s.datasets),
                    method=list(s.methods), n_shots=list(s.shots), seed=list(s.seeds),
                    epochs=s.epochs, eval_every=s.eval_every, substitute=c.substitute,
                    class_names=s.class_names, batch_size=s.batch_size,
                    max_steps=s.max_steps)
    if isinstance(s, CrossModal):
        return grid(task="crossmodal", model=list(s.models), dataset=list(s.datasets),
                    method=list(s.methods), seed=list(s.seeds), epochs=s.epochs,
                    eval_every=s.eval_every, max_steps=s.max_steps, max_train=s.max_train,
                    substitute=c.substitute, canvas=c.canvas)
    return []
