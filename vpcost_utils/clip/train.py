"""Visual prompting of CLIP (Section 3.2.2 of the paper): ``run_clip(spec)``.

Three set-ups, picked by ``spec.method`` (``setups.SETUPS``): ``"ilm-vp"`` (the authors' script:
zero-initialised 30-px ``BorderPrompt``, 81 templates x K text rows, ILM mapping at the start of
every epoch, epoch 0 included), ``"single-tp-vp"`` (ILM-VP's own VP baseline: the same prompt, one
template "This is a photo of a {}.", identity mapping) and ``"vp"`` (Bahng et al.: N(0,1)
``PadPrompter``, "This is a photo of a {}", identity mapping, warm-up). All: SGD(momentum 0.9),
lr 40, cosine per step. Defaults: the paper's 10 epochs and batch 16; Bahng's own values are
``spec.replace(**BAHNG_ORIGINAL)``.

Images go through CLIP's own transform (bicubic resize of the short side, centre crop; built on
the device from a bounded-size cache, ``images.py``), are CLIP-normalised, then the prompt is added
(no clamp). The class names in the prompts are ours or the fork's (``classnames.py``). Training runs
in fp32 on CPU and under bf16 autocast on CUDA (the reference used fp16 AMP); the mapping and test
passes always run in fp32.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from ..config import RunSpec
from ..data import sample_n_shots
from ..errors import SpecError
from ..mapping import frequency_matrix, greedy_one_to_one
from ..metrics import summarize
from ..models import create_model
from ..train import set_seed
from .classnames import class_name_source, class_names_for
from .head import clip_logits, text_embeddings
from .images import ClipImages, load_clip_split
from .prompts import BorderPrompt, PadPrompter, default_pad
from .schedules import bahng_warmup, cosine_lr
from .setups import SETUPS

#: Bahng et al.'s own epochs and batch size (their warm-up of 1000 steps is always used, capped).
BAHNG_ORIGINAL = {"epochs": 1000, "batch_size": 256}
MOMENTUM = 0.9
EVAL_BATCH = 256
#: What every record says about the image pipeline (clip/transform.py; equal to PIL's byte for byte).
PREPROCESSING = "CLIP: RGB, Resize(S, bicubic) of the short side, CenterCrop(S), /255, CLIP mean/std"


def _normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - mean) / std


class PromptedClip:
    """Prompt + frozen CLIP + text head: ``logits(uint8 images) -> [B, rows of the head]``."""

    def __init__(self, source, prompt: torch.nn.Module, text: torch.Tensor, device: torch.device):
        self.model, self.prompt, self.text, self.device = source.module, prompt, text, device
        self.size = source.canvas_size
        self.mean = torch.tensor(source.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(source.std, device=device).view(1, 3, 1, 1)
        self.autocast = device.type == "cuda"

    def logits(self, images: torch.Tensor, *, mixed: bool = True) -> torch.Tensor:
        x = self.prompt(_normalise(images.to(self.device, non_blocking=True), self.mean, self.std))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast and mixed):
            return clip_logits(self.model, x, self.text).float()

    def batch_logits(self, images: ClipImages, index: torch.Tensor) -> torch.Tensor:
        """Training logits of ``images[index]``, built at the model's resolution with CLIP's transform."""
        return self.logits(images.batch(index, self.size, self.device))

    @torch.no_grad()
    def all_logits(self, images: ClipImages) -> torch.Tensor:
        """Logits of the mapping and test passes, in fp32 as the reference's: bf16 would round CLIP's logits
        (20-35) to steps of 0.125-0.25 and break ties towards the lowest text row."""
        order = torch.arange(len(images))
        return torch.cat([self.logits(images.batch(chunk, self.size, self.device), mixed=False).cpu()
                          for chunk in order.split(EVAL_BATCH)])


def build_prompt(method: str, size: int, seed: int) -> torch.nn.Module:
    pad = default_pad(size)
    if SETUPS[method].prompt == "border":
        return BorderPrompt(size, pad)
    return PadPrompter(size, pad, generator=torch.Generator().manual_seed(seed))


def ilm_mapping(head: PromptedClip, images: ClipImages, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
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
    setup = SETUPS[spec.method]
    train, test = load_clip_split(spec.dataset, "train", size), load_clip_split(spec.dataset, "test", size)
    index = sample_n_shots(train.labels, spec.n_shots, spec.seed)
    if spec.max_train is not None:
        index = index[:spec.max_train]
    train = train.subset(index)
    num_classes = len(train.classes)

    names_source = class_name_source(spec)
    classnames = class_names_for(spec.dataset, list(train.classes), names_source)
    templates = setup.templates
    text = text_embeddings(source.module, classnames, templates)  # rejects bad class names before training
    prompt = build_prompt(spec.method, size, spec.seed).to(device)
    head = PromptedClip(source, prompt, text, device)

    batch = spec.effective_batch_size
    steps_per_epoch = math.ceil(len(train) / batch)
    total = spec.epochs * steps_per_epoch
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    warmup = bahng_warmup(total) if setup.warmup else 0
    optimizer = torch.optim.SGD(prompt.parameters(), lr=spec.effective_lr, momentum=MOMENTUM, weight_decay=0.0)
    order_rng = torch.Generator().manual_seed(spec.seed)
    mapping = torch.arange(num_classes)  # without ILM, row c of the head is class c

    curves: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_acc", "lr", "eval_epoch", "test_acc")}
    mapping_history, best_acc, step, test_logits = [], 0.0, 0, None
    start = time.time()
    for epoch in range(spec.epochs):
        if step >= total:
            break
        if setup.ilm:
            mapping = ilm_mapping(head, train, train.labels, num_classes)
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
            logits = head.batch_logits(train, batch_index)[:, mapping.to(device)]
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
            test_logits = head.all_logits(test)[:, mapping]
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
        "classes": classnames,
        "model": dict(source.provenance),
        "data": {"n_train": len(train), "n_test": len(test), "resolution": size, "pad": default_pad(size),
                 "class_names": names_source, "setup": setup.reference, "prompt": setup.prompt,
                 "preprocessing": PREPROCESSING,
                 "templates": len(templates), "steps": step, "warmup_steps": warmup,
                 "mapping_rows": "template-major: row t*K + c is template t with class c",
                 "mapping_history": mapping_history},
    }
