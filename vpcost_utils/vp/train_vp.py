"""The visual-prompting loop for image classifiers, readable top to bottom.

train_step -> source_logits -> VPTask -> run_vp (the epoch loop itself is ``loop.run_epochs``, shared by every
task). Faithful to ILM-VP as the authors ran it
(reference-algorithms.md §1d, must-match 2-5): frozen backbone in eval mode, only the prompt
learns; Adam lr 0.01; MultiStepLR x0.1 at 50 % and 72 % of the epochs, stepped per epoch;
cross-entropy over the K mapped logits; FLM once before training, ILM at the start of every
epoch (epoch 0 included), RLM a seeded random injective mapping (BLM / BLM+ / FullyMap beyond the paper:
``mapping.py``); mixed precision (bf16 autocast) for the
training step on CUDA only, unless ``RunSpec.precision`` says otherwise. The prompt is the paper's padding prompt
unless ``RunSpec.prompt`` names another (``visual_prompts.py``: BLM's / SMM's watermark, AutoVP's learned scale,
SMM's sample-specific mask, whose generator trains in a parameter group of its own).

Deliberate differences, each a spec field defaulting to the faster choice:
- The test set is evaluated every ``eval_every`` epochs and after the last, not every epoch
  (``eval_every=1`` is the reference); in few-shot runs the reference spends nearly all its time
  re-evaluating 10k-26k test images to train on 10-100.
- The headline accuracy is the LAST epoch's. The authors kept the checkpoint with the best test
  accuracy (model selection on the test set); that number is recorded beside it as ``best_acc``.

Batches are built on the device from the uint8 tensors of ``data.ImageSplit``: no PIL, no
per-sample Python. Training state is kept per run so several runs sharing one backbone can later
be stepped together in one batch (the prompt and mapping are the only per-run state).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from ..config import RunSpec
from ..data import ImageSplit, load_split, sample_n_shots
from ..data.shots import hold_out, largest_class
from ..errors import SpecError, UnknownNameError
from ..models import SourceModel, create_model, get_entry
from .label_mapping import (
    REVOTED_EVERY_EPOCH,
    Mapping,
    dominant_sources,
    estimate_mapping,
    fully_connected_mapping,
    map_logits,
    mapping_summary,
    random_mapping,
)
from .temperature import fit_temperature
from .visual_prompts import Prompt, create_prompt

EVAL_BATCH = 256  # any size gives the same logits; the paper-compatible ECE re-batches by its own size


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, as the reference's ``set_seed`` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(split: ImageSplit, batch_size: int, device: torch.device, generator: torch.Generator | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images in [0, 1], labels) on ``device``; shuffled when a generator is given."""
    order = torch.randperm(len(split), generator=generator) if generator is not None else torch.arange(len(split))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield split.images[idx].to(device, non_blocking=True).float().div_(255), split.labels[idx].to(device)


def training_precision(precision: str | None, device: torch.device, *, quantized: bool) -> str:
    """The arithmetic of the training and mapping passes: "bf16" (autocast) or "fp32".

    None is the reference's choice: CUDA AMP on a GPU, fp32 on the CPU. Quantized backbones are always fp32:
    their fake quantizers would round bf16 activations to other codes than the fp32 test pass sees, so the
    prompt would train on a different network.
    """
    if quantized:
        return "fp32"
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _autocast(device: torch.device, precision: str = "fp32"):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(backbone: nn.Module, prompt: Prompt, mapping: Mapping, split: ImageSplit,
               index: torch.Tensor, optimizer: torch.optim.Optimizer, device: torch.device, precision: str = "fp32"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step of the prompt (and of a FullyMap layer) on ``split[index]``; returns (loss, mapped
    logits, labels)."""
    images = split.images[index].to(device, non_blocking=True).float().div_(255)
    labels = split.labels[index].to(device)
    with _autocast(device, precision):
        source = backbone(prompt(images)).float()
    # The mapping runs on fp32 logits outside autocast: the same numbers as selecting K bf16 logits first for an
    # index mapping, and a matrix or layer mapping keeps fp32 (the reference's BLM matmul runs under fp16 AMP).
    logits = map_logits(source, mapping)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    prompt.constrain_()  # AutoVP clamps its scale after every step; the other prompts have nothing to project
    return loss, logits, labels


def train_one_epoch(backbone: nn.Module, prompt: Prompt, mapping: Mapping, train: ImageSplit,
                    optimizer: torch.optim.Optimizer, batch_size: int, device: torch.device,
                    generator: torch.Generator, precision: str = "fp32") -> tuple[float, float]:
    """One pass over the training subset outside a run (the benchmark times it, as ``run_vp``'s loop runs it);
    returns (mean loss, accuracy %)."""
    from ..loop import train_epoch

    class OneEpoch:
        def step(self, index: torch.Tensor, step: int):
            return train_step(backbone, prompt, mapping, train, index, optimizer, device, precision)

    prompt.train()
    order = torch.randperm(len(train), generator=generator)
    return train_epoch(OneEpoch(), order, batch_size, -(-len(train) // batch_size), 0, device)


@torch.no_grad()
def source_logits(backbone: nn.Module, prompt: Prompt, split: ImageSplit, device: torch.device
                  ) -> torch.Tensor:
    """All source logits of the prompted model over a split, in fp32 as the reference's test pass."""
    prompt.eval()
    return torch.cat([backbone(prompt(x)).float().cpu() for x, _ in batches(split, EVAL_BATCH, device)])


def _frequency_mapping(backbone: nn.Module, prompt: Prompt, train: ImageSplit, device: torch.device,
                       precision: str = "fp32", method: str = "ilm") -> torch.Tensor:
    """The one pass over the training images of a voted mapping (FLM / ILM index, BLM / BLM+ matrix)."""
    prompt.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        with _autocast(device, precision):
            return backbone(prompt(x)).float()

    return estimate_mapping(method, forward, batches(train, EVAL_BATCH, device), train.num_classes).to(device)


@torch.no_grad()
def mapped_logits(backbone: nn.Module, prompt: Prompt, mapping: Mapping, split: ImageSplit,
                  device: torch.device) -> torch.Tensor:
    """The K target logits (on the CPU) of the prompted model over a split under ``mapping``, fp32."""
    source = source_logits(backbone, prompt, split, device)
    if isinstance(mapping, nn.Module):  # the layer lives on the device; map there in test-sized chunks
        return torch.cat([map_logits(part.to(device), mapping).cpu() for part in source.split(EVAL_BATCH)])
    return map_logits(source, mapping.cpu())


def _is_quantized(name: str, model: SourceModel) -> bool:
    try:
        return get_entry(name).compression == "quantization"
    except UnknownNameError:  # a model passed in by the caller, not from the registry
        return model.provenance.get("bits") is not None


def _check_shots(spec: RunSpec, labels: torch.Tensor) -> None:
    if spec.n_shots is None or spec.oversized == "paper":  # "paper": all images of each class, at N's batch size
        return
    largest = largest_class(labels)
    if spec.n_shots > largest:
        raise SpecError(f"n_shots={spec.n_shots} but no class of {spec.dataset} has more than {largest} training "
                        f"images; use n_shots=None (full data) instead")


def fixed_test_indices(labels: torch.Tensor, max_test: int | None) -> torch.Tensor:
    """Indices of a fixed stratified subset of ``max_test`` test images (the same for every model and seed), or all.

    Paired comparisons (dense vs compressed, seed by seed) then share every test image; the subset
    depends only on the labels, so a rerun anywhere picks the same images.
    """
    if max_test is None or max_test >= len(labels):
        return torch.arange(len(labels))
    from ..data.splits import stratified_split

    _, keep = stratified_split(labels.numpy(), max_test / len(labels), seed=0)
    return torch.from_numpy(np.sort(keep))


def fixed_test_subset(test: ImageSplit, max_test: int | None) -> ImageSplit:
    """The test split restricted to ``fixed_test_indices`` (the split itself when it keeps all)."""
    if max_test is None or max_test >= len(test):
        return test
    return test.subset(fixed_test_indices(test.labels, max_test))


def load_data(spec: RunSpec, input_size: int | None = None) -> tuple[ImageSplit, ImageSplit]:
    """The N-shot training subset and the test split (all of it unless ``spec.max_test``)."""
    train, test, _ = load_data_with_holdout(spec, input_size)
    return train, test


def data_indices(spec: RunSpec, train: ImageSplit, test_labels: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(N-shot training indices, test indices, held-out indices or None) into the full splits.

    With ``spec.holdout`` the held-out images are taken from the training split first and the N shots are
    drawn from the rest, so the temperature is fitted on images the prompt never trained on. Every method
    (VP's prompts, the linear probe's cached features) trains and tests on these same images.
    """
    rest = torch.arange(len(train))
    held = None
    if spec.holdout is not None:
        try:
            held_idx, rest_idx = hold_out(train.labels, spec.holdout, spec.data_seed)
        except ValueError as exc:
            raise SpecError(f"{spec.dataset}: {exc}") from None
        held, rest = held_idx, rest_idx
    _check_shots(spec, train.labels[rest])
    chosen = rest[sample_n_shots(train.labels[rest], spec.n_shots, spec.data_seed)]
    if spec.max_train is not None:
        chosen = chosen[:spec.max_train]
    return chosen, fixed_test_indices(test_labels, spec.max_test), held


def load_data_with_holdout(spec: RunSpec, input_size: int | None = None
                           ) -> tuple[ImageSplit, ImageSplit, ImageSplit | None]:
    """(N-shot training subset, test split, held-out calibration images or None); see ``data_indices``."""
    train = load_split(spec.dataset, "train", size=input_size)
    test = load_split(spec.dataset, "test", size=input_size)
    train_idx, test_idx, held_idx = data_indices(spec, train, test.labels)
    held = train.subset(held_idx) if held_idx is not None else None
    test = test if len(test_idx) == len(test) else test.subset(test_idx)
    return train.subset(train_idx), test, held


def _temperature_scaled(held_logits: torch.Tensor, held_labels: torch.Tensor, test_logits: torch.Tensor,
                        test_labels: torch.Tensor) -> dict:
    """The temperature fitted on the held-out images and the test statistics after dividing by it."""
    t = fit_temperature(held_logits, held_labels)
    scaled = test_logits.float() / t
    probs = scaled.softmax(1)
    return {"temperature": t, "ece_temp_scaled": metrics.ece(probs, test_labels),
            "nll_temp_scaled": float(F.cross_entropy(scaled, test_labels)),
            "reliability_temp_scaled": metrics.reliability(probs, test_labels),
            "holdout_ece": metrics.ece(held_logits.float().softmax(1), held_labels)}


def prepare_backbone(model: SourceModel, device: torch.device, *, quantized: bool, fold: bool | None = None
                     ) -> tuple[nn.Module, dict]:
    """The frozen backbone as the loop runs it, and what was done to it (recorded in every run's ``runtime``).

    Runtime choices only, never a spec field: the same function to float rounding. BatchNorm is folded into
    the conv before it (1.5x forward+backward for ResNet-18 on a 2-core CPU; ``VPCOST_FOLD_BN=0`` turns it
    off), except in quantized backbones, where moving the affine map in front of a fake quantizer could flip
    a code. channels_last: 1.4x for EfficientNet-Lite on a 2-core CPU (docs/benchmarks.md).
    """
    import os

    from ..models.fold import count_batchnorm, fold_batchnorm

    if fold is None:
        fold = os.environ.get("VPCOST_FOLD_BN", "1") not in ("0", "")
    backbone = model.module
    before = count_batchnorm(backbone)
    if fold and not quantized and before:
        backbone = fold_batchnorm(backbone)
    backbone = backbone.to(device, memory_format=torch.channels_last)
    return backbone, {"channels_last": True, "batchnorm_folded": before - count_batchnorm(backbone)}


def convergence(train_loss: list[float], mapping_history: list[tuple[int, list[int]]], epochs: int) -> dict:
    """Has the run settled? Stored in every record, so an under-trained protocol shows in its own results.

    ``loss_change_last_tenth``: relative change of the training loss over the last tenth of the epochs (at least
    one epoch); ``mapping_changes_last_quarter``: how often ILM changed the label mapping in the last quarter of
    the epochs. ``settled``: the loss moved by less than 5 % and the mapping not at all over those spans.
    """
    back = max(1, epochs // 10)
    if len(train_loss) > back:
        before = train_loss[-1 - back]
        change = (train_loss[-1] - before) / before if before else 0.0
    else:
        change = float("nan")
    quarter_start = epochs - max(1, epochs // 4)
    changes = sum(1 for epoch, _ in mapping_history[1:] if epoch >= quarter_start)
    last_change = mapping_history[-1][0] if mapping_history else 0
    return {"loss_change_last_tenth": change, "mapping_changes_last_quarter": changes,
            "last_mapping_change_epoch": last_change,
            "settled": bool(abs(change) < 0.05 and changes == 0) if change == change else False}


#: The factor of the learning-rate drops at 50 % and 72 % of the epochs (ILM-VP's, and BLM's, SMM's, AutoVP's).
LR_DROP = 0.1


def drop_schedule(optimizer: torch.optim.Optimizer, milestones: list[int], gammas: list[float]
                  ) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate of each parameter group times its ``gamma`` at every milestone epoch: MultiStepLR when all
    groups share one factor (every prompt but SMM on a transformer), else the same drops per group (LambdaLR)."""
    if len(set(gammas)) == 1:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gammas[0])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [functools.partial(_dropped, milestones, g) for g in gammas])


def _dropped(milestones: list[int], gamma: float, epoch: int) -> float:
    return gamma ** sum(epoch >= m for m in milestones)


def backbone_family(model_name: str) -> str:
    """SMM's configuration for a backbone (``visual_prompts.SMM_CONFIGS``): "vit" for a transformer (ViT, DeiT, Swin,
    by the registry's arch or, outside the registry, the name), "cnn" for every other network."""
    try:
        arch = get_entry(model_name).arch
    except UnknownNameError:
        arch = model_name
    return "vit" if any(kind in arch.lower() for kind in ("vit", "deit", "swin")) else "cnn"


class VPTask:
    """Visual prompting of an image classifier as one ``loop.Task``: the prompt, its optimizer and scheduler, the
    label mapping (RLM fixed, FLM voted before the first epoch, ILM / BLM / BLM+ before every epoch, FullyMap a
    layer trained with the prompt), the test pass."""

    def __init__(self, spec: RunSpec, model: SourceModel, backbone: nn.Module, train: ImageSplit, test: ImageSplit,
                 device: torch.device, precision: str, mapping_precision: str):
        self.spec, self.backbone, self.train, self.test, self.device = spec, backbone, train, test, device
        self.precision, self.mapping_precision = precision, mapping_precision
        canvas = spec.canvas or model.canvas_size
        self.prompt = create_prompt(spec.prompt, canvas, train.input_size, model.mean, model.std, seed=spec.seed,
                                    family=backbone_family(spec.model)).to(device)
        self.mapping: Mapping | None = None
        if spec.method == "rlm":
            self.mapping = random_mapping(model.num_classes, train.num_classes,
                                          torch.Generator().manual_seed(spec.seed)).to(device)
        # One group of the prompt's parameters, unless its reference trains parts at their own rates (SMM's generator)
        groups = self.prompt.param_groups(spec.effective_lr)
        if spec.method == "fullymap":  # AutoVP: one Adam over the prompt and the layer, one learning rate
            self.mapping = fully_connected_mapping(model.num_classes, train.num_classes).to(device)
            groups[0]["params"] = groups[0]["params"] + list(self.mapping.parameters())
        gammas = [group.pop("gamma", LR_DROP) for group in groups]
        self.optimizer = torch.optim.Adam(groups, lr=spec.effective_lr)
        # The reference's int(0.5 E), int(0.72 E); for E = 1 both are 0, which MultiStepLR applies before the first
        # step (the whole run at lr / 100). Drops start at epoch 1 at the earliest; E >= 2 is unchanged.
        milestones = [max(1, int(0.5 * spec.epochs)), max(1, int(0.72 * spec.epochs))]
        self.scheduler = drop_schedule(self.optimizer, milestones, gammas)
        self.mapping_history: list[tuple[int, list[int]]] = []
        self.saved_prompts: dict[int, torch.Tensor] = {}
        self.test_logits: torch.Tensor | None = None
        self.lr = spec.effective_lr

    def begin_epoch(self, epoch: int) -> None:
        method = self.spec.method
        if method in REVOTED_EVERY_EPOCH or (method == "flm" and epoch == 0):
            self.mapping = _frequency_mapping(self.backbone, self.prompt, self.train, self.device,
                                              self.mapping_precision, method)
        # The history holds the source class each target reads most: a matrix or layer mapping is too large to
        # keep per epoch, and its dominant classes are what the convergence check and Fig. 1 compare.
        dominant = dominant_sources(self.mapping).tolist()
        if not self.mapping_history or self.mapping_history[-1][1] != dominant:
            self.mapping_history.append((epoch, dominant))
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.prompt.train()

    def step(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return train_step(self.backbone, self.prompt, self.mapping, self.train, index, self.optimizer, self.device,
                          self.precision)

    def end_epoch(self, epoch: int) -> float:
        self.scheduler.step()
        if epoch + 1 in self.spec.save_prompts:
            self.saved_prompts[epoch + 1] = self.prompt.frame().detach().cpu().clone()
        return self.lr

    def evaluate(self, epoch: int) -> float:
        # Evaluated with the mapping of this epoch, as the reference's end-of-epoch test pass.
        self.test_logits = mapped_logits(self.backbone, self.prompt, self.mapping, self.test, self.device)
        return 100 * float((self.test_logits.argmax(1) == self.test.labels).double().mean())

    def state(self) -> dict:
        mapping = self.mapping
        if isinstance(mapping, nn.Module):  # FullyMap: the layer's tensors (a checkpoint holds tensors only)
            mapping = {k: v.detach().cpu() for k, v in mapping.state_dict().items()}
        elif mapping is not None:
            mapping = mapping.cpu()
        # theta (and AutoVP's scale, SMM's generator with its BatchNorm statistics)
        prompt = {name: t.detach().cpu() for name, t in self.prompt.training_state().items()}
        return {"prompt": prompt, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "lr": self.lr, "mapping": mapping,
                "mapping_history": self.mapping_history, "saved_prompts": self.saved_prompts,
                "test_logits": self.test_logits}

    def load_state(self, state: dict) -> None:
        prompt = state["prompt"] if "prompt" in state else {"theta": state["theta"]}  # "theta": older checkpoints
        with torch.no_grad():
            for name, t in self.prompt.training_state().items():
                t.copy_(prompt[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.lr = state["lr"]
        if isinstance(self.mapping, nn.Module):
            self.mapping.load_state_dict(state["mapping"])
        else:
            self.mapping = state["mapping"].to(self.device) if state["mapping"] is not None else None
        self.mapping_history = [(int(e), list(m)) for e, m in state["mapping_history"]]
        self.saved_prompts, self.test_logits = dict(state["saved_prompts"]), state["test_logits"]


def run_vp(spec: RunSpec, *, device: str | torch.device = "cpu", progress: bool = True,
           model: SourceModel | None = None, checkpoint: str | Path | None = None) -> dict:
    """Train one visual prompt as ``spec`` says and return the record body (metrics, curves, mapping...).

    ``checkpoint``: a file to save the training state to at due epoch ends and to resume from
    (``checkpoint.Checkpointer``); None: no checkpoints.
    """
    from ..checkpoint import Checkpointer
    from ..loop import Schedule, run_epochs

    device = torch.device(device)
    set_seed(spec.seed)
    model = model or create_model(spec.model, substitute=spec.substitute, device=device)
    train, test, held = load_data_with_holdout(spec)
    quantized = _is_quantized(spec.model, model)
    backbone, runtime = prepare_backbone(model, device, quantized=quantized)
    precision = training_precision(spec.precision, device, quantized=quantized)
    # The reference's mapping vote runs in fp32 (its AMP covers the training step only); bf16 there only when a
    # spec asks for bf16 as a speed choice.
    mapping_precision = precision if spec.precision == "bf16" else "fp32"
    runtime.update(precision=precision, mapping_precision=mapping_precision)
    task = VPTask(spec, model, backbone, train, test, device, precision, mapping_precision)
    schedule = Schedule.for_run(spec, len(train))
    saver = Checkpointer(checkpoint, spec.run_id)
    done = run_epochs(task, schedule, len(train), spec.effective_batch_size, spec.seed, device, saver=saver,
                      desc=f"{spec.model} {spec.dataset} {spec.method}", progress=progress)
    runtime["resumed_at_epoch"] = done.resumed_at
    runtime.update(saver.runtime())
    curves, mapping, test_logits = done.curves, task.mapping, task.test_logits

    paper_batch = 64 if spec.dataset == "oxford_pets" else 128  # the authors' test batch sizes
    summary = metrics.summarize(test_logits, test.labels, paper_batch_size=paper_batch)
    if held is not None:
        summary.update(_temperature_scaled(mapped_logits(backbone, task.prompt, mapping, held, device),
                                           held.labels, test_logits, test.labels))
    best = int(np.argmax(curves["test_acc"]))
    summary.update(best_acc=curves["test_acc"][best], best_epoch=curves["eval_epoch"][best])
    source_names = model.class_names or [str(i) for i in range(model.num_classes)]
    dominant = dominant_sources(mapping).tolist()
    matrix = mapping_summary(mapping)
    return {
        "metrics": summary,
        "convergence": convergence(curves["train_loss"], task.mapping_history, spec.epochs),
        "test_predictions": metrics.encode_predictions(test_logits, test.labels),
        "curves": curves,
        "mapping": dominant,  # for BLM / BLM+ / FullyMap: the source class each target reads most
        "mapping_history": task.mapping_history,
        "mapped_source_classes": [source_names[s] for s in dominant],
        **({"mapping_matrix": matrix} if matrix is not None else {}),
        # a prompt beyond the paper's: its name and what it learned besides theta (AutoVP's final scale)
        **({"prompt": {"name": spec.prompt, **task.prompt.summary()}} if spec.prompt is not None else {}),
        "classes": train.classes,
        "model": model.provenance,
        "data": {"n_train": len(train), "n_test": len(test), "input_size": train.input_size,
                 "canvas": spec.canvas or model.canvas_size, "n_holdout": len(held) if held is not None else 0,
                 "steps": done.step},
        "runtime": runtime,
        "_prompts": task.saved_prompts,
    }

