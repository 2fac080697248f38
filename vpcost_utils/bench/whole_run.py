"""Section 3 of the bench: a whole few-shot run, ours and the reference protocol's, timed and compared."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import RunSpec
from ..data import ImageSplit
from ..models import SourceModel
from ..running.plan import evaluations
from ..vp import train_vp as vp
from ..vp.visual_prompts import ExpansivePrompt
from .common import (
    NUM_CLASSES,
    REFERENCE_TEST_BATCH,
    SHOTS,
    TEST_IMAGES,
    emit,
    emit_ratio,
    note,
    random_split,
    reference_backbone,
    timed,
)
from .reference import (
    EpochPermutation,
    PILSplit,
    ReferencePrompt,
    reference_mapping,
    reference_test,
    reference_train_epoch,
)


@dataclass
class Loop:
    """One VP run in progress (ours or the reference's), so its phases can be timed one by one."""

    prompt: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    mapping: torch.Tensor | None = None


def _new_loop(prompt: nn.Module, epochs: int, lr: float, seed: int) -> Loop:
    optimizer = torch.optim.Adam(prompt.parameters(), lr=lr)
    milestones = [max(1, int(0.5 * epochs)), max(1, int(0.72 * epochs))]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return Loop(prompt, optimizer, scheduler, torch.Generator().manual_seed(seed))


class Ours:
    """Our run, step by step, exactly as ``run_vp`` calls the phase functions."""

    def __init__(self, model: SourceModel, train: ImageSplit, spec: RunSpec, device: torch.device,
                 fold_bn: bool = True):
        backbone, _ = vp.prepare_backbone(model, device, quantized=False, fold=fold_bn)
        self.backbone, self.train, self.spec, self.device = backbone, train, spec, device
        vp.set_seed(spec.seed)
        prompt = ExpansivePrompt(model.canvas_size, train.input_size, model.mean, model.std).to(device)
        self.loop = _new_loop(prompt, spec.epochs, spec.effective_lr, spec.seed)

    def mapping_pass(self) -> None:
        self.loop.mapping = vp._frequency_mapping(self.backbone, self.loop.prompt, self.train, self.device)

    def train_epoch(self) -> None:
        vp.train_one_epoch(self.backbone, self.loop.prompt, self.loop.mapping, self.train, self.loop.optimizer,
                           self.spec.effective_batch_size, self.device, self.loop.generator)
        self.loop.scheduler.step()

    def test_logits(self, test: ImageSplit) -> torch.Tensor:
        return vp.source_logits(self.backbone, self.loop.prompt, test, self.device)[:, self.loop.mapping.cpu()]


class Reference:
    """The reference protocol's run, step by step (same seed, same batch order as ours)."""

    def __init__(self, model: SourceModel, train: ImageSplit, spec: RunSpec, device: torch.device):
        self.network, self.spec, self.device = reference_backbone(model, device), spec, device
        vp.set_seed(spec.seed)
        prompt = ReferencePrompt(model.canvas_size, train.input_size, model.mean, model.std).to(device)
        self.loop = _new_loop(prompt, spec.epochs, spec.effective_lr, spec.seed)
        self.num_targets = train.num_classes
        dataset = PILSplit(train)
        # The authors' shuffled train loader, its permutations drawn from our seeded generator as ours are.
        self.train_loader = DataLoader(dataset, batch_size=spec.effective_batch_size,
                                       sampler=EpochPermutation(len(dataset), self.loop.generator))
        self.mapping_loader = DataLoader(dataset, batch_size=spec.effective_batch_size)
        self.scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def mapping_pass(self) -> None:
        # The authors run the vote over their shuffled train loader; the order changes nothing but would
        # consume the shared generator, so it reads the same images unshuffled here.
        self.loop.mapping = reference_mapping(self.network, self.loop.prompt, self.mapping_loader, self.num_targets,
                                              self.device)

    def train_epoch(self) -> None:
        reference_train_epoch(self.network, self.loop.prompt, self.loop.mapping, self.train_loader,
                              self.loop.optimizer, self.scaler, self.device)
        self.loop.scheduler.step()

    def test_logits(self, test: ImageSplit) -> torch.Tensor:
        loader = DataLoader(PILSplit(test), batch_size=REFERENCE_TEST_BATCH)
        return reference_test(self.network, self.loop.prompt, self.loop.mapping, loader, self.device)


UNFOLDED = "ours without BatchNorm folding"


def run_both(model: SourceModel, train: ImageSplit, test: ImageSplit, spec: RunSpec, device: torch.device,
             epochs: int, fold_bn: bool = False) -> dict[str, dict]:
    """``epochs`` epochs of each loop, then one test pass each; per-phase seconds, test logits, prompts.

    The loops take turns phase by phase, so a change of load from other processes hits them alike. With
    ``fold_bn`` a third loop runs ours without BatchNorm folding (``run_vp`` folds by default).
    """
    runs = {"ours": Ours(model, train, spec, device), "reference": Reference(model, train, spec, device)}
    if fold_bn:
        runs[UNFOLDED] = Ours(model, train, spec, device, fold_bn=False)
    out: dict[str, dict] = {name: {"mapping_s": [], "train_s": []} for name in runs}
    for _ in range(epochs):
        for phase in ("mapping", "train"):
            for name, run in runs.items():
                step = run.mapping_pass if phase == "mapping" else run.train_epoch
                out[name][f"{phase}_s"].append(timed(step, device)[0])
    # The test passes take turns too, one chunk of the test images at a time.
    chunk = max(vp.EVAL_BATCH, REFERENCE_TEST_BATCH)
    for name in runs:
        out[name]["test_s"], out[name]["logits"] = 0.0, []
    for start in range(0, len(test), chunk):
        part = test.subset(torch.arange(start, min(start + chunk, len(test))))
        for name, run in runs.items():
            seconds, logits = timed(lambda run=run, part=part: run.test_logits(part), device)
            out[name]["test_s"] += seconds
            out[name]["logits"].append(logits)
    for name, run in runs.items():
        out[name]["logits"] = torch.cat(out[name]["logits"])
        theta = run.loop.prompt.program if name == "reference" else run.loop.prompt.theta
        out[name]["frame"] = torch.sigmoid(theta).detach().cpu()
        out[name]["mapping"] = run.loop.mapping.cpu()
    return out


def whole_run_lines(model: SourceModel, device: torch.device, input_size: int, epochs_timed: int, test_images: int,
                    test_total: int = TEST_IMAGES, fold_bn: bool = True) -> float:
    """Time the loops for a few epochs and ``test_images`` test images; extrapolate to the whole run."""
    spec = RunSpec("bench/random", "bench/random", method="ilm", n_shots=SHOTS)
    train = random_split(NUM_CLASSES * SHOTS, input_size, seed=1)
    test = random_split(min(test_images, test_total), input_size, seed=2)
    # One untimed epoch of each loop on 10 images first: the first calls of a backbone pay one-off set-up costs.
    tiny = random_split(NUM_CLASSES, input_size, seed=3)
    run_both(model, tiny, tiny, spec, device, 1, fold_bn)
    res = run_both(model, train, test, spec, device, epochs_timed, fold_bn)
    epochs, n_evals = spec.epochs, evaluations(spec.epochs, spec.eval_every)
    note(f"whole run: ILM, {NUM_CLASSES} classes x {SHOTS} shots (batch {spec.effective_batch_size}), "
         f"{epochs} epochs, {test_total} test images; ours evaluates {n_evals} times (eval_every="
         f"{spec.eval_every}), the reference {epochs} times")
    note(f"timed: {epochs_timed} epoch(s) of mapping + training and {len(test)} test images of each loop; "
         f"extrapolated: the other {epochs - epochs_timed} epochs and the rest of the test passes, per phase")
    totals = {}
    for name, r in res.items():
        evals = epochs if name == "reference" else n_evals
        mapping_s = emit(f"{name} mapping pass s/epoch", float(np.mean(r["mapping_s"])))
        train_s = emit(f"{name} training s/epoch", float(np.mean(r["train_s"])))
        test_s = emit(f"{name} test pass s/evaluation", r["test_s"] * test_total / len(test))
        emit(f"{name} test images/s", len(test) / r["test_s"])
        totals[name] = emit(f"{name} whole run s (extrapolated)", epochs * (mapping_s + train_s) + evals * test_s)
    reference = ("reference whole run s (extrapolated)", totals["reference"])
    ratio = emit_ratio("whole run speedup vs reference protocol", reference,
                       ("ours whole run s (extrapolated)", totals["ours"]))
    if fold_bn:
        emit_ratio("whole run speedup without BatchNorm folding vs reference protocol", reference,
                   (f"{UNFOLDED} whole run s (extrapolated)", totals[UNFOLDED]))
    note(f"same seed, same batches: after {epochs_timed} epoch(s) the loops should agree to float rounding")
    ref = res["reference"]
    for name, r in res.items():
        if name != "reference":
            emit(f"{name} vs reference prompt max abs difference", float((r["frame"] - ref["frame"]).abs().max()))
            emit(f"{name} vs reference mapping agreement %", _percent_equal(r["mapping"], ref["mapping"]))
            emit(f"{name} vs reference test predictions agreeing %",
                 _percent_equal(r["logits"].argmax(1), ref["logits"].argmax(1)))
        emit(f"{name} test accuracy %", accuracy(r["logits"], test.labels))
    return ratio


def _percent_equal(a: torch.Tensor, b: torch.Tensor) -> float:
    return 100 * float((a == b).double().mean())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return _percent_equal(logits.argmax(1), labels)


def final_accuracies(model: SourceModel, train: ImageSplit, test: ImageSplit, spec: RunSpec,
                     device: torch.device) -> tuple[float, float, float]:
    """A whole run both ways, start to end: (our final acc %, the reference's final acc %, max |logit diff|).

    Ours is ``run_vp``'s sequence of calls; the reference evaluates every epoch (only the last counts here).
    """
    accs, logits = [], []
    for cls in (Ours, Reference):
        run = cls(model, train, spec, device)
        for epoch in range(spec.epochs):
            if spec.method == "ilm" or epoch == 0:
                run.mapping_pass()
            run.train_epoch()
            if cls is Reference or (epoch + 1) % spec.eval_every == 0 or epoch + 1 == spec.epochs:
                final = run.test_logits(test)
        accs.append(accuracy(final, test.labels))
        logits.append(final)
    return accs[0], accs[1], float((logits[0] - logits[1]).abs().max())
