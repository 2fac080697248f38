"""The runs each notebook section needs, built from its resolved settings (``profiles.settings``).

Notebooks call ``section_specs`` to get their grid; ``reproduce`` calls it for every section before
any notebook starts, so a profile with missing data or checkpoints fails once, listing all of them.
"""

from __future__ import annotations

import itertools
from typing import Any

from .config import RunSpec


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


def _vp(cfg: dict[str, Any], models: list[str], methods: Any, shots: Any, **extra: Any) -> list[RunSpec]:
    return grid(model=models, dataset=list(cfg["datasets"]), method=list(methods), n_shots=list(shots),
                seed=list(cfg["seeds"]), epochs=cfg["epochs"], eval_every=cfg["eval_every"],
                substitute=cfg["substitute"], canvas=cfg.get("canvas"), max_test=cfg.get("max_test"),
                oversized=cfg.get("oversized"), **extra)


def section_specs(section: str, cfg: dict[str, Any]) -> list[RunSpec]:
    """All run specs of one notebook section (a list; empty for the summary)."""
    if section in ("sparse_transfer", "quantization"):
        return _vp(cfg, family_models(cfg["families"]), cfg["methods"], cfg["shots"])
    if section == "calibration":
        return (_vp(cfg, family_models(cfg["sparse_families"]), cfg["methods"], cfg["shots"])
                + _vp(cfg, family_models(cfg["quant_families"]), ["ilm"], cfg.get("quant_shots") or cfg["shots"]))
    if section == "label_mapping":
        base = dict(method="ilm", n_shots=cfg["shots"][0], seed=cfg["seeds"][0], epochs=cfg["epochs"],
                    eval_every=cfg["eval_every"], substitute=cfg["substitute"], canvas=cfg.get("canvas"),
                    max_test=cfg.get("max_test"))
        pairs = grid(model=[cfg["dense"], cfg["sparse"], *cfg["quant_pair"]], dataset=list(cfg["datasets"]), **base)
        prompts = grid(model=[cfg["dense"], *cfg["prompt_pair"]], dataset=cfg["prompt_dataset"],
                       save_prompts=[prompt_epochs(cfg["epochs"])], **base)
        compared = [] if not cfg.get("compare_methods") else grid(
            model=[cfg["dense"], cfg["sparse"]], dataset=list(cfg["datasets"]),
            **{**base, "method": list(cfg["compare_methods"])})
        return pairs + prompts + [s for s in compared if s not in pairs]
    if section == "clip":
        return grid(task="clip", model=list(cfg["models"]), dataset=list(cfg["datasets"]),
                    method=list(cfg["methods"]), n_shots=list(cfg["shots"]), seed=list(cfg["seeds"]),
                    epochs=cfg["epochs"], eval_every=cfg["eval_every"], substitute=cfg["substitute"],
                    class_names=cfg.get("class_names"), batch_size=cfg.get("batch_size"),
                    max_steps=cfg.get("max_steps"))
    if section == "cross_modal":
        return grid(task="crossmodal", model=list(cfg["models"]), dataset=list(cfg["datasets"]),
                    method=list(cfg["methods"]), seed=list(cfg["seeds"]), epochs=cfg["epochs"],
                    eval_every=cfg["eval_every"], max_steps=cfg["max_steps"], max_train=cfg["max_train"],
                    substitute=cfg["substitute"], canvas=cfg.get("canvas"))
    return []
