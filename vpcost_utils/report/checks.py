"""Checks before any training: every model gives K-way logits, every dataset has the images N needs, every
image fits the canvas. Each failure is a ``SpecError`` that names the problem and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import SpecError
from .report_config import ReportConfig


def check_model(name: str, *, substitute: bool = False, canvas: int | None = None, probe: bool = False
                ) -> dict[str, Any]:
    """Build ``name`` and check at the report's canvas that it maps images to ``[B, num_classes]`` logits
    (``models.external.check_output``, the check every outside model already passes at its own size); with
    ``probe`` (the report runs LP), that it has the linear head whose input LP reads (``probe.features``)."""
    from ..models import create_model
    from ..models.external import check_output

    model = create_model(name, substitute=substitute)
    model.canvas_size = canvas or model.canvas_size
    check_output(model)
    if probe:
        from ..probe.features import penultimate

        try:
            penultimate(model.module)
        except SpecError as exc:
            raise SpecError(f"{name}: {exc}, or leave lp out of --methods") from None
    return dict(model.provenance, canvas=model.canvas_size, num_classes=model.num_classes)


def check_dataset(name: str, shots: Sequence[int | None], holdout: int) -> dict[str, Any]:
    """Both splits load, share their classes, and every class has N + ``holdout`` training images."""
    import torch

    from ..data import load_split

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
        from ..data import get_dataset_info

        info["source"] = get_dataset_info(name).notes
    return info


def preflight(config: ReportConfig) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Check every model and dataset before anything trains; returns their provenance."""
    models = {m: check_model(m, substitute=config.substitute, canvas=config.canvas, probe="lp" in config.methods)
              for m in config.models}
    classes = {m: p["num_classes"] for m, p in models.items()}
    if len(set(classes.values())) > 1:
        raise SpecError(f"the models do not share one output space: {classes}; a dense/compressed pair must "
                        f"predict the same classes for their label mappings to be comparable")
    datasets = {d: check_dataset(d, config.shots, config.holdout) for d in config.datasets}
    return models, datasets
