"""Sections 1 and 2 of the bench: our loop's phases beside the bare backbone, and each runtime switch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from ..models import SourceModel
from ..models.fold import fold_batchnorm
from ..vp import train_vp as vp
from ..vp.visual_prompts import ExpansivePrompt
from .common import best_seconds, emit, emit_ratio, note, our_backbone, random_split, reference_backbone, timed


def phase_lines(model: SourceModel, device: torch.device, batch: int, input_size: int, repeats: int
                ) -> dict[str, float]:
    """Our three phases at ``batch`` images beside the bare backbone on the same prompted batch."""
    backbone = our_backbone(model, device)
    split = random_split(batch, input_size)
    prompt = ExpansivePrompt(model.canvas_size, input_size, model.mean, model.std).to(device)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    mapping = torch.arange(split.num_classes, device=device)
    with torch.no_grad():
        canvas = prompt(split.images.to(device).float().div(255))

    def bare_forward() -> None:
        with torch.inference_mode():
            backbone(canvas)

    def bare_train() -> None:
        x = canvas.detach().requires_grad_(True)
        backbone(x)[:, mapping].sum().backward()

    t = best_seconds({
        "mapping": lambda: vp._frequency_mapping(backbone, prompt, split, device),
        "forward": bare_forward,
        "train": lambda: vp.train_one_epoch(backbone, prompt, mapping, split, optimizer, batch, device, generator),
        "forward+backward": bare_train,
        "test": lambda: vp.source_logits(backbone, prompt, split, device),
    }, repeats, device)
    ips = {k: batch / v for k, v in t.items()}
    note(f"phases: {batch} images per call, best of {repeats} (interleaved), images/s")
    names = {"forward": "backbone forward images/s", "forward+backward": "backbone forward+backward images/s",
             "mapping": "mapping pass images/s", "train": "training step images/s", "test": "test pass images/s"}
    out = {k: emit(names[k], ips[k]) for k in names}
    for phase, bare in (("mapping", "forward"), ("train", "forward+backward"), ("test", "forward")):
        emit_ratio(f"{names[phase].removesuffix(' images/s')} vs {names[bare].removesuffix(' images/s')}",
                   (names[phase], out[phase]), (names[bare], out[bare]))
    return out


def _steps(backbone: nn.Module, canvas: torch.Tensor, bf16: bool = False, cudnn_benchmark: bool | None = None
           ) -> dict[str, Callable[[], None]]:
    """The forward and forward+backward (input gradient) calls of ``backbone`` on ``canvas``."""

    @contextlib.contextmanager
    def settings():
        previous = torch.backends.cudnn.benchmark
        if cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = cudnn_benchmark
        try:
            with torch.autocast(canvas.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                yield
        finally:
            torch.backends.cudnn.benchmark = previous

    def forward() -> None:
        with torch.inference_mode(), settings():
            backbone(canvas)

    def forward_backward() -> None:
        x = canvas.detach().requires_grad_(True)
        with settings():
            y = backbone(x)
        y.float().sum().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def _compare(lines: dict[str, float], switch: str, off: str, on: str) -> None:
    """The ratio lines of one switch, from images/s lines already printed (keys '<label> <phase>')."""
    for phase in ("forward", "forward+backward"):
        emit_ratio(f"{switch} {phase}", (f"{on} {phase} images/s", lines[f"{on} {phase}"]),
                   (f"{off} {phase} images/s", lines[f"{off} {phase}"]))


def switch_lines(model: SourceModel, device: torch.device, batch: int, repeats: int, compile_backbone: bool) -> None:
    """Each runtime switch of the frozen backbone, off and on, all variants interleaved in one measurement."""
    canvas = torch.randn(batch, 3, model.canvas_size, model.canvas_size, device=device)
    fast = our_backbone(model, device)
    variants = {"contiguous": _steps(reference_backbone(model, device), canvas),
                "channels_last": _steps(fast, canvas),
                "BatchNorm folded": _steps(fold_batchnorm(fast).to(device, memory_format=torch.channels_last), canvas),
                "channels_last bf16": _steps(fast, canvas, bf16=True)}
    cuda = device.type == "cuda"  # our loop trains under bf16 autocast on CUDA only (train._autocast)
    if cuda:
        variants["channels_last bf16"] = _steps(fast, canvas, bf16=True, cudnn_benchmark=False)
        variants["cudnn.benchmark bf16"] = _steps(fast, canvas, bf16=True, cudnn_benchmark=True)
    if compile_backbone:
        compiled = _steps(torch.compile(fast), canvas, bf16=cuda)
        seconds, _ = timed(lambda: [fn() for fn in compiled.values()], device)
        emit("torch.compile first calls s", seconds)  # compiling both graphs, paid once per backbone
        variants["compiled"] = compiled
    fns = {f"{label} {phase}": fn for label, steps in variants.items() for phase, fn in steps.items()}
    note(f"switches: {batch} images per call, best of {repeats}, all variants interleaved, images/s")
    lines = {k: emit(f"{k} images/s", batch / t) for k, t in best_seconds(fns, repeats, device).items()}
    _compare(lines, "channels_last", "contiguous", "channels_last")
    _compare(lines, "BatchNorm folded", "channels_last", "BatchNorm folded")
    _compare(lines, "bf16 autocast", "channels_last", "channels_last bf16")
    if cuda:
        _compare(lines, "cudnn.benchmark", "channels_last bf16", "cudnn.benchmark bf16")
    else:
        note("bf16 on a CPU changes logits beyond float rounding, so our CPU runs stay fp32 (measured for "
             "information); cudnn.benchmark: CUDA only")
    if compile_backbone:
        _compare(lines, "torch.compile", "channels_last bf16" if cuda else "channels_last", "compiled")
