"""Linear probing (``method="lp"``): a new linear head on the frozen backbone's penultimate features.

Faithful to the authors' ``experiments/cnn/linear_probing.py`` (reference-algorithms.md, "Linear-probing baseline"):
the source head replaced by ``nn.Linear(features, K)`` with PyTorch's default initialisation, the backbone frozen in
eval mode, Adam lr 0.01, the paper's 100 epochs and its MultiStepLR (x0.1 at 50 % and 72 % of the epochs), the
batch size of Table 5, the image resized to the model's input (224 px; ``RunSpec.canvas`` overrides), no
augmentation. The same N-shot sample, held-out images, test images and metrics as a VP run of the same spec
(``train.data_indices``), so LP and VP cells pair seed by seed.

Deliberate differences: the features are computed once per image and cached (``features.py``): with a frozen
eval-mode backbone and no augmentation the head sees exactly the inputs the reference recomputes every epoch. The
reference trains under CUDA AMP; on the CPU the head trains in fp32 (on a GPU too: the head is a 1280 x K matmul).
The test set is evaluated every ``eval_every`` epochs and after the last; the headline is the last epoch's accuracy
(the reference kept the best test epoch, recorded as ``best_acc``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..config import RunSpec
from ..data import load_split
from ..loop import Schedule, cross_entropy_step, run_epochs
from ..models import create_model
from ..vp.train_vp import _is_quantized, _temperature_scaled, convergence, data_indices, prepare_backbone, set_seed
from .features import FeatureCache


class LPTask:
    """A linear head on cached features as one ``loop.Task``: Adam, MultiStepLR, the test pass on test features."""

    def __init__(self, spec: RunSpec, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, num_classes: int):
        self.spec, self.train_x, self.train_y, self.test_x, self.test_y = spec, train_x, train_y, test_x, test_y
        self.head = nn.Linear(train_x.shape[1], num_classes)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=spec.effective_lr)
        milestones = [max(1, int(0.5 * spec.epochs)), max(1, int(0.72 * spec.epochs))]  # as VPTask (train.py)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=milestones, gamma=0.1)
        self.lr = spec.effective_lr
        self.test_logits: torch.Tensor | None = None

    def begin_epoch(self, epoch: int) -> None:
        self.lr = self.optimizer.param_groups[0]["lr"]

    def step(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, labels = self.head(self.train_x[index]), self.train_y[index]
        return cross_entropy_step(self.optimizer, logits, labels), logits, labels

    def end_epoch(self, epoch: int) -> float:
        self.scheduler.step()
        return self.lr

    @torch.no_grad()
    def evaluate(self, epoch: int) -> float:
        self.test_logits = self.head(self.test_x)
        return 100 * float((self.test_logits.argmax(1) == self.test_y).double().mean())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.head(x)

    def state(self) -> dict:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "lr": self.lr, "test_logits": self.test_logits}

    def load_state(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.lr, self.test_logits = state["lr"], state["test_logits"]


def run_lp(spec: RunSpec, *, device: str | torch.device = "cpu", progress: bool = True,
           checkpoint: str | Path | None = None) -> dict:
    """Train one linear probe as ``spec`` says and return the record body (metrics, curves, ...)."""
    from ..checkpoint import Checkpointer

    device = torch.device(device)
    model = create_model(spec.model, substitute=spec.substitute, device=device)
    canvas = spec.canvas or model.canvas_size
    backbone, runtime = prepare_backbone(model, device, quantized=_is_quantized(spec.model, model))
    train_split, test_split = load_split(spec.dataset, "train"), load_split(spec.dataset, "test")
    train_idx, test_idx, held_idx = data_indices(spec, train_split, test_split.labels)
    start = time.time()
    prep = f"bnfold{runtime['batchnorm_folded']}"
    train_cache = FeatureCache(model, backbone, train_split, canvas, device, runtime=prep, progress=progress)
    test_cache = FeatureCache(model, backbone, test_split, canvas, device, runtime=prep, progress=progress)
    held_x = train_cache.get(held_idx) if held_idx is not None else None
    train_x, test_x = train_cache.get(train_idx), test_cache.get(test_idx)
    runtime.update(precision="fp32", feature_seconds=round(time.time() - start, 3),
                   features_computed=train_cache.computed + test_cache.computed,
                   feature_dim=int(train_x.shape[1]))
    train_y, test_y = train_split.labels[train_idx], test_split.labels[test_idx]

    set_seed(spec.seed)  # the head's initialisation and the batch order follow the seed, as in the reference
    task = LPTask(spec, train_x, train_y, test_x, test_y, train_split.num_classes)
    schedule = Schedule.for_run(spec, len(train_idx))
    saver = Checkpointer(checkpoint, spec.run_id)
    done = run_epochs(task, schedule, len(train_idx), spec.effective_batch_size, spec.seed, torch.device("cpu"),
                      saver=saver, desc=f"{spec.model} {spec.dataset} lp", progress=progress)
    runtime["resumed_at_epoch"] = done.resumed_at
    runtime.update(saver.runtime())
    curves, test_logits = done.curves, task.test_logits
    summary = metrics.summarize(test_logits, test_y)
    if held_x is not None:
        summary.update(_temperature_scaled(task.logits(held_x), train_split.labels[held_idx], test_logits, test_y))
    best = int(np.argmax(curves["test_acc"]))
    summary.update(best_acc=curves["test_acc"][best], best_epoch=curves["eval_epoch"][best])
    return {
        "metrics": summary,
        "convergence": convergence(curves["train_loss"], [], spec.epochs),
        "test_predictions": metrics.encode_predictions(test_logits, test_y),
        "curves": curves,
        "classes": train_split.classes,
        "model": model.provenance,
        "data": {"n_train": len(train_idx), "n_test": len(test_idx), "input_size": train_split.input_size,
                 "canvas": canvas, "n_holdout": len(held_idx) if held_idx is not None else 0, "steps": done.step},
        "runtime": runtime,
    }
