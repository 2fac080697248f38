"""Section 6 of the bench: each label-mapping method's training cost per step as a ratio to ILM's (issue #35).

A method's epoch is what ``run_vp`` runs for it: ``VPTask.begin_epoch`` (the one pass over the training images
that FLM makes at epoch 0 and ILM, BLM and BLM+ make every epoch; RLM and FullyMap make none) and then the epoch's
optimizer steps (FullyMap's also train its 1000 x K layer). Each method runs that through ``train.VPTask`` itself on
random images for ``epochs`` epochs, best of ``repeats`` rounds interleaved across methods; its cost per step is
that time over the steps taken, so the mapping pass is spread over its epoch's steps, as in a run. FLM's single
vote is charged to the timed epochs too (a 16-epoch run spreads it 16 times thinner).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..config import RunSpec
from ..models import SourceModel
from ..vp import train_vp as vp
from ..vp.label_mapping import MAPPING_METHODS
from .common import best_seconds, emit, emit_ratio, note, our_backbone, random_split


def _epochs_of(task: vp.VPTask, n_train: int, batch: int, epochs: int) -> Callable[[], None]:
    """A call that runs ``epochs`` epochs of ``task`` (the loop's order of calls, without its bookkeeping)."""
    generator = torch.Generator().manual_seed(0)

    def run() -> None:
        for epoch in range(epochs):
            task.begin_epoch(epoch)
            for k, index in enumerate(torch.randperm(n_train, generator=generator).split(batch)):
                task.step(index, k)
            task.end_epoch(epoch)

    return run


def method_lines(model: SourceModel, device: torch.device, input_size: int = 32, shots: int = 10, epochs: int = 2,
                 batch: int = 32, repeats: int = 1, methods: tuple[str, ...] = MAPPING_METHODS,
                 canvas: int | None = None
                 ) -> dict[str, float]:
    """Seconds per training step of each method (mapping pass included) and its ratio to ILM's; returns the
    ratios by method. ``canvas``: the prompt's canvas (None: the model's own; the mini profile uses 128)."""
    if "ilm" not in methods:
        raise ValueError(f"the ratios are to ILM's step: include 'ilm' in methods, got {methods}")
    backbone = our_backbone(model, device)
    train = random_split(10 * shots, input_size)
    steps = epochs * -(-len(train) // batch)
    calls = {}
    for method in methods:
        torch.manual_seed(0)  # FullyMap's layer starts from the same draw on every bench run
        spec = RunSpec("bench", "random", method=method, n_shots=shots, epochs=epochs, eval_every=epochs,
                       batch_size=batch, canvas=canvas)
        task = vp.VPTask(spec, model, backbone, train, train, device, "fp32", "fp32")
        calls[method] = _epochs_of(task, len(train), batch, epochs)
    seconds = best_seconds(calls, repeats, device)
    note(f"methods: {epochs} epochs of {len(train)} images (10 classes x {shots} shots, batch {batch}) through "
         f"train.VPTask, best of {repeats} (interleaved); s per step includes the method's mapping passes")
    per_step = {m: emit(f"{m} s per step", seconds[m] / steps) for m in methods}
    ilm = ("ilm s per step", per_step["ilm"])
    return {m: emit_ratio(f"{m} vs ilm step cost", (f"{m} s per step", per_step[m]), ilm)
            for m in methods if m != "ilm"}
