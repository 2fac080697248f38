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

from pathlib import Path
from typing import Any

import torch

from ..config import RunSpec
from ..data import sample_n_shots
from ..errors import SpecError
from ..loop import cross_entropy_step
from ..metrics import summarize
from ..models import create_model
from ..vp.label_mapping import frequency_matrix, greedy_one_to_one
from ..vp.train_vp import set_seed
from .classnames import class_name_source, class_names_for
from .clip_prompts import BorderPrompt, PadPrompter, default_pad
from .head import clip_logits, text_embeddings
from .images import ClipImages, load_clip_split
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


class ClipTask:
    """CLIP visual prompting as one ``loop.Task``: SGD with a per-step cosine rate, ILM's vote before every epoch
    (or the identity mapping), the test pass over the text head."""

    def __init__(self, spec: RunSpec, head: PromptedClip, train: ClipImages, test: ClipImages, total: int,
                 warmup: int, device: torch.device):
        self.spec, self.head, self.train, self.test, self.device = spec, head, train, test, device
        self.total, self.warmup, self.setup = total, warmup, SETUPS[spec.method]
        self.num_classes = len(train.classes)
        self.optimizer = torch.optim.SGD(head.prompt.parameters(), lr=spec.effective_lr, momentum=MOMENTUM,
                                         weight_decay=0.0)
        self.mapping = torch.arange(self.num_classes)  # without ILM, row c of the head is class c
        self.mapping_history: list[list[int]] = []
        self.lr = spec.effective_lr
        self.test_logits: torch.Tensor | None = None

    def begin_epoch(self, epoch: int) -> None:
        if self.setup.ilm:
            self.mapping = ilm_mapping(self.head, self.train, self.train.labels, self.num_classes)
            self.mapping_history.append(self.mapping.tolist())
        self.head.prompt.train()

    def step(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.lr = cosine_lr(step, self.spec.effective_lr, self.total, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        labels = self.train.labels[index].to(self.device)
        logits = self.head.batch_logits(self.train, index)[:, self.mapping.to(self.device)]
        return cross_entropy_step(self.optimizer, logits, labels), logits, labels

    def end_epoch(self, epoch: int) -> float:
        return self.lr  # the epoch's last step's

    def evaluate(self, epoch: int) -> float:
        self.head.prompt.eval()
        self.test_logits = self.head.all_logits(self.test)[:, self.mapping]
        return 100 * float((self.test_logits.argmax(1) == self.test.labels).float().mean())

    def state(self) -> dict[str, Any]:
        return {"prompt": self.head.prompt.state_dict(), "optimizer": self.optimizer.state_dict(), "lr": self.lr,
                "mapping": self.mapping, "mapping_history": self.mapping_history, "test_logits": self.test_logits}

    def load_state(self, state: dict[str, Any]) -> None:
        self.head.prompt.load_state_dict(state["prompt"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr, self.mapping = state["lr"], state["mapping"]
        self.mapping_history, self.test_logits = state["mapping_history"], state["test_logits"]


def run_clip(spec: RunSpec, *, device: str | torch.device = "cpu", progress: bool = True,
             checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Train one CLIP visual prompt as ``spec`` says; returns the record body (metrics, curves, mapping, ...).
    ``checkpoint``: as ``train.run_vp``'s."""
    from ..checkpoint import Checkpointer
    from ..loop import Schedule, run_epochs

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

    names_source = class_name_source(spec)
    classnames = class_names_for(spec.dataset, list(train.classes), names_source)
    templates = setup.templates
    text = text_embeddings(source.module, classnames, templates)  # rejects bad class names before training
    prompt = build_prompt(spec.method, size, spec.seed).to(device)
    head = PromptedClip(source, prompt, text, device)

    batch = spec.effective_batch_size
    schedule = Schedule.for_run(spec, len(train))
    warmup = bahng_warmup(schedule.total_steps) if setup.warmup else 0
    task = ClipTask(spec, head, train, test, schedule.total_steps, warmup, device)
    done = run_epochs(task, schedule, len(train), batch, spec.seed, device, saver=Checkpointer(checkpoint, spec.run_id),
                      desc=f"clip {spec.method} {spec.dataset}", progress=progress)

    metrics = summarize(task.test_logits, test.labels, paper_batch_size=batch)
    metrics["best_acc"] = max([0.0, *done.curves["test_acc"]])
    return {
        "metrics": metrics,
        "curves": done.curves,
        "mapping": task.mapping.tolist(),
        "classes": classnames,
        "model": dict(source.provenance),
        "data": {"n_train": len(train), "n_test": len(test), "resolution": size, "pad": default_pad(size),
                 "class_names": names_source, "setup": setup.reference, "prompt": setup.prompt,
                 "preprocessing": PREPROCESSING,
                 "templates": len(templates), "steps": done.step, "warmup_steps": warmup,
                 "mapping_rows": "template-major: row t*K + c is template t with class c",
                 "mapping_history": task.mapping_history},
    }
