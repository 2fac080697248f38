"""Visual prompting of CLIP (Section 3.2.2 of the paper): ``run_clip(spec)``.

Two set-ups, picked by ``spec.method``:

- ``"ilm-vp"`` (the authors' script): zero-initialised 30-px ``BorderPrompt``; head = the 81
  templates x K classes; at the start of every epoch (epoch 0 included) the ILM routine counts,
  on the training set, which of the 81*K text embeddings each class's prompted images pick, and
  the greedy one-to-one assignment chooses one embedding per class (it need not belong to that
  class's name). SGD(momentum 0.9), lr 40, cosine per step, no warm-up.
- ``"vp"`` (Bahng et al.): N(0,1) ``PadPrompter`` with 30-px pads; head = "This is a photo of a
  {}" per class, fixed; SGD(momentum 0.9), lr 40, cosine per step after a linear warm-up
  (``schedules.bahng_warmup``). Defaults: the paper's 10 epochs and batch 16; Bahng's own values
  are ``spec.replace(**BAHNG_ORIGINAL)``.

The image is resized to the model's resolution, CLIP-normalised, then the prompt is added
(no clamp). Training runs in fp32 on CPU and under bf16 autocast on CUDA (the reference used fp16 AMP);
the mapping and test passes always run in fp32.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from ..config import RunSpec
from ..data import load_split, sample_n_shots
from ..errors import SpecError
from ..mapping import frequency_matrix, greedy_one_to_one
from ..metrics import summarize
from ..models import create_model
from ..train import set_seed
from .head import clip_logits, text_embeddings
from .prompts import BorderPrompt, PadPrompter, default_pad
from .schedules import bahng_warmup, cosine_lr
from .templates import BAHNG_TEMPLATE, ILM_TEMPLATES

#: Bahng et al.'s own epochs and batch size (their warm-up of 1000 steps is always used, capped).
BAHNG_ORIGINAL = {"epochs": 1000, "batch_size": 256}
MOMENTUM = 0.9
EVAL_BATCH = 256


def _normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - mean) / std


class PromptedClip:
    """Prompt + frozen CLIP + text head: ``logits(uint8 images) -> [B, rows of the head]``."""

    def __init__(self, source, prompt: torch.nn.Module, text: torch.Tensor, device: torch.device):
        self.model, self.prompt, self.text, self.device = source.module, prompt, text, device
        self.mean = torch.tensor(source.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(source.std, device=device).view(1, 3, 1, 1)
        self.autocast = device.type == "cuda"

    def logits(self, images: torch.Tensor, *, mixed: bool = True) -> torch.Tensor:
        x = self.prompt(_normalise(images.to(self.device, non_blocking=True), self.mean, self.std))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast and mixed):
            return clip_logits(self.model, x, self.text).float()

    @torch.no_grad()
    def all_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the mapping and test passes, in fp32 as the reference's: bf16 would round CLIP's logits
        (20-35) to steps of 0.125-0.25 and break ties towards the lowest text row."""
        return torch.cat([self.logits(images[i:i + EVAL_BATCH], mixed=False).cpu()
                          for i in range(0, len(images), EVAL_BATCH)])


def build_prompt(method: str, size: int, seed: int) -> torch.nn.Module:
    pad = default_pad(size)
    if method == "ilm-vp":
        return BorderPrompt(size, pad)
    return PadPrompter(size, pad, generator=torch.Generator().manual_seed(seed))


def ilm_mapping(head: PromptedClip, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One ILM step: hard votes over all 81*K text rows on the training set, then greedy one-to-one."""
    return greedy_one_to_one(frequency_matrix(head.all_logits(images), labels, num_classes))


def run_clip(spec: RunSpec, *, device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Train one CLIP visual prompt as ``spec`` says; returns the record body (metrics, curves, mapping, ...)."""
    if spec.task != "clip":
        raise SpecError(f"run_clip needs task='clip', got {spec.task!r}")
    device = torch.device(device)
    set_seed(spec.seed)
    source = create_model(spec.model, substitute=spec.substitute, device=device)
    if source.provenance.get("kind") != "clip":
        raise SpecError(f"{spec.model} is not a CLIP model; task='clip' needs one of models.list_models('*clip*')")
    size = source.canvas_size
    train, test = load_split(spec.dataset, "train", size=size), load_split(spec.dataset, "test", size=size)
    index = sample_n_shots(train.labels, spec.n_shots, spec.seed)
    if spec.max_train is not None:
        index = index[:spec.max_train]
    train = train.subset(index)
    num_classes = len(train.classes)

    templates = ILM_TEMPLATES if spec.method == "ilm-vp" else (BAHNG_TEMPLATE,)
    text = text_embeddings(source.module, train.classes, templates)  # rejects bad class names before training
    prompt = build_prompt(spec.method, size, spec.seed).to(device)
    head = PromptedClip(source, prompt, text, device)

    batch = spec.effective_batch_size
    steps_per_epoch = math.ceil(len(train) / batch)
    total = spec.epochs * steps_per_epoch
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    warmup = bahng_warmup(total) if spec.method == "vp" else 0
    optimizer = torch.optim.SGD(prompt.parameters(), lr=spec.effective_lr, momentum=MOMENTUM, weight_decay=0.0)
    order_rng = torch.Generator().manual_seed(spec.seed)
    mapping = torch.arange(num_classes)  # "vp": row c of the head is class c

    curves: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_acc", "lr", "eval_epoch", "test_acc")}
    mapping_history, best_acc, step, test_logits = [], 0.0, 0, None
    start = time.time()
    for epoch in range(spec.epochs):
        if step >= total:
            break
        if spec.method == "ilm-vp":
            mapping = ilm_mapping(head, train.images, train.labels, num_classes)
            mapping_history.append(mapping.tolist())
        prompt.train()
        loss_sum = correct = seen = 0
        for batch_index in torch.randperm(len(train), generator=order_rng).split(batch):
            if step >= total:
                break
            lr = cosine_lr(step, spec.effective_lr, total, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            labels = train.labels[batch_index].to(device)
            logits = head.logits(train.images[batch_index])[:, mapping.to(device)]
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        curves["epoch"].append(epoch + 1)  # 1-based, as the VP records
        curves["train_loss"].append(loss_sum / max(seen, 1))
        curves["train_acc"].append(100 * correct / max(seen, 1))
        curves["lr"].append(lr)
        last = epoch == spec.epochs - 1 or step >= total
        if (epoch + 1) % spec.eval_every == 0 or last:
            prompt.eval()
            test_logits = head.all_logits(test.images)[:, mapping]
            acc = 100 * float((test_logits.argmax(1) == test.labels).float().mean())
            best_acc = max(best_acc, acc)
            curves["eval_epoch"].append(epoch + 1)
            curves["test_acc"].append(acc)
            if progress:
                print(f"[clip {spec.method}] epoch {epoch + 1}/{spec.epochs} loss {curves['train_loss'][-1]:.3f} "
                      f"train {curves['train_acc'][-1]:.1f}% test {acc:.2f}% ({time.time() - start:.0f}s)", flush=True)

    metrics = summarize(test_logits, test.labels, paper_batch_size=batch)
    metrics["best_acc"] = best_acc
    return {
        "metrics": metrics,
        "curves": curves,
        "mapping": mapping.tolist(),
        "classes": list(train.classes),
        "model": dict(source.provenance),
        "data": {"n_train": len(train), "n_test": len(test), "resolution": size, "pad": default_pad(size),
                 "templates": len(templates), "steps": step, "warmup_steps": warmup,
                 "mapping_rows": "template-major: row t*K + c is template t with class c",
                 "mapping_history": mapping_history},
    }
