"""Every run of a grid checked before the first one starts; one error that lists every problem.

``check(specs, store=..., device=...)`` loads each model and dataset the specs name once and checks,
for every spec: the model and the dataset resolve and their files are here (with where to get them),
the images fit the model's canvas, N-shot budgets (plus held-out images) fit every class, the device
exists, and the output folder can be written and has room for the grid's records and mid-run checkpoints
(estimated: ``RECORD_BYTES`` a run, ``CHECKPOINT_BYTES`` a worker). The notebooks
(``notebook.Section.run``), ``reproduce`` and the report call it; a bad grid fails in seconds with the
whole list, not after an hour with the first failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import RunSpec
from ..errors import VpcostError

#: Room a run's record needs: its per-image test outcomes are ~8 bytes an image (80 KB for a 10k test set),
#: curves and provenance a few KB; rounded up.
RECORD_BYTES = 200_000
#: Room a running worker's mid-run checkpoint needs: the largest measured was 4.3 MB (docs/benchmarks.md), and
#: the atomic write briefly holds two copies; rounded up.
CHECKPOINT_BYTES = 20_000_000


class PreflightError(VpcostError):
    """Some runs of a grid cannot run; ``problems`` lists each one with its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) found before any training; nothing was trained:\n"
                         + "\n".join(f"- {p}" for p in problems))


def _model(name: str, substitute: bool, cache: dict, problems: list[str]) -> Any:
    from ..models import create_model, get_entry

    if name not in cache:
        try:
            entry = get_entry(name)
            note = entry.unbuilt() if entry.unbuilt is not None and not substitute else None
            if note is not None:  # checked through its parent (same files, canvas, classes): no build in a preflight
                print(f"note: {note}", file=sys.stderr)
                cache[name] = _model(entry.parent, substitute, cache, problems)
            else:
                cache[name] = create_model(name, substitute=substitute)
        except VpcostError as exc:  # unknown name, missing file (with where to get it), bad checkpoint
            cache[name] = None
            if not any(str(exc) in p for p in problems):  # two models may need the same missing file
                problems.append(f"model {name}: {exc}")
    return cache[name]


def _dataset(spec: RunSpec, cache: dict, problems: list[str]) -> Any:
    key = (spec.task, spec.dataset)
    if key not in cache:
        try:
            if spec.task == "crossmodal":
                from ..data.text import load_text_split

                cache[key] = (load_text_split(spec.dataset, "train", max_train=spec.max_train),
                              load_text_split(spec.dataset, "test"))
            else:
                if spec.task == "clip":
                    from .. import clip  # noqa: F401  (registers the CLIP smoke targets)
                from ..data import load_split

                cache[key] = (load_split(spec.dataset, "train"), load_split(spec.dataset, "test"))
        except VpcostError as exc:
            cache[key] = None
            if not any(str(exc) in p for p in problems):
                problems.append(f"dataset {spec.dataset}: {exc}")
    return cache[key]


def _shots(spec: RunSpec, train: Any) -> str | None:
    """An N-shot budget the classes cannot feed once the held-out images are taken. (An N above every class
    without a hold-out is the full-data run: the notebooks drop it with a note, ``drop_oversized_shots``.)"""
    import torch

    if spec.task != "vp" or spec.n_shots is None or spec.oversized == "paper":
        return None
    counts = torch.bincount(train.labels.long())
    holdout, largest = spec.holdout or 0, int(counts.max())
    if holdout and int(counts.min()) <= holdout:
        return (f"{spec.dataset}: a class has {int(counts.min())} training images, too few to hold out {holdout} "
                f"per class and still train on it (run {spec.run_id}); lower holdout")
    if holdout and largest - holdout < spec.n_shots <= largest:
        return (f"{spec.dataset}: N={spec.n_shots} but no class has more than {largest - holdout} training images "
                f"after holding out {holdout} (run {spec.run_id}); lower N or holdout")
    return None


def _writable(folder: Path) -> str | None:
    """Can ``folder`` be made and written? Checked on it or its nearest existing parent, creating nothing."""
    existing = _nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"output folder {folder} cannot be written ({existing} is not a writable folder); choose another " \
               f"output_dir"
    return None


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _room(folder: Path, runs: int, workers: int) -> str | None:
    """Is there room on ``folder``'s disk for ``runs`` records and ``workers`` checkpoints?"""
    import shutil

    need = runs * RECORD_BYTES + workers * CHECKPOINT_BYTES
    free = shutil.disk_usage(_nearest_existing(folder)).free
    if free < need:
        return (f"output folder {folder}: {free / 1e6:.0f} MB free on its disk, about {need / 1e6:.0f} MB needed for "
                f"{runs} run records and {workers} mid-run checkpoint(s); free some space or choose another output_dir")
    return None


def check(specs: Sequence[RunSpec], *, store_root: str | Path | None = None, device: str | None = None) -> None:
    """Raise ``PreflightError`` listing every problem of ``specs``; return quietly when all can run."""
    import torch

    problems: list[str] = []
    if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"device {device!r} asked for, but torch sees no CUDA device; use device='cpu' or run on a "
                        f"GPU machine")
    if store_root is not None and (reason := _writable(Path(store_root))):
        problems.append(reason)
    elif store_root is not None and (reason := _room(Path(store_root), len(specs), os.cpu_count() or 1)):
        problems.append(reason)  # at most one worker a core, so one checkpoint a core
    models: dict[str, Any] = {}
    datasets: dict[Any, Any] = {}
    seen: set[str] = set()
    for spec in specs:
        model = _model(spec.model, spec.substitute, models, problems)
        splits = _dataset(spec, datasets, problems)
        if spec.task != "vp" or model is None or splits is None:
            continue
        train = splits[0]
        canvas = spec.canvas or model.canvas_size
        if train.input_size > canvas:
            problem = (f"{spec.dataset} images are {train.input_size} px, larger than {spec.model}'s {canvas}-px "
                       f"canvas: raise canvas, or decode them smaller (folder:PATH?size=S)")
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
        if (problem := _shots(spec, train)) and problem.split(" (run")[0] not in seen:
            seen.add(problem.split(" (run")[0])
            problems.append(problem)
    if problems:
        raise PreflightError(problems)
