"""The bench's output lines (``name: value``) and its shared set-up: random images, models, timers."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..data import ImageSplit
from ..models import SourceModel, create_model
from ..models.random_init import canvas_and_classes, random_architecture

NUM_CLASSES, SHOTS, TEST_IMAGES = 10, 10, 10_000  # the whole run (CIFAR-10-sized test set)
REFERENCE_TEST_BATCH = 128  # the authors' VP test loaders


def emit(name: str, value: float) -> float:
    """Print one measured line; six significant digits so printed ratios recompute from printed parts."""
    print(f"{name}: {value:.6g}", flush=True)
    return float(f"{value:.6g}")


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def emit_ratio(name: str, numerator: tuple[str, float], denominator: tuple[str, float]) -> float:
    """``<name> ratio: a / b`` of two lines already printed, given as (name, value); says which in a comment."""
    note(f"{name} ratio = {numerator[0]} / {denominator[0]}")
    return emit(f"{name} ratio", numerator[1] / denominator[1])


def random_split(n: int, input_size: int, num_classes: int = NUM_CLASSES, seed: int = 0) -> ImageSplit:
    """``n`` random uint8 images with balanced labels (every class present once ``n >= num_classes``)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, input_size, input_size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    return ImageSplit("bench", "random", images, labels, [str(c) for c in range(num_classes)])


def random_model(arch: str) -> SourceModel:
    """A randomly initialised ImageNet architecture (no weights needed), frozen."""
    module = random_architecture(arch).eval().requires_grad_(False)
    canvas, classes = canvas_and_classes(arch)
    return SourceModel(f"{arch}/random-init", module, canvas_size=canvas, num_classes=classes,
                       provenance={"name": f"{arch}/random-init"})


def load_model(model: str | None, arch: str, device: torch.device) -> SourceModel:
    if model:
        return create_model(model, substitute=True, device=device)
    return random_model(arch).to(device)


def our_backbone(model: SourceModel, device: torch.device) -> nn.Module:
    """The frozen backbone as ``run_vp`` prepares it (channels-last)."""
    return model.module.to(device, memory_format=torch.channels_last)


def reference_backbone(model: SourceModel, device: torch.device) -> nn.Module:
    """A copy in PyTorch's default (contiguous) memory format, as the authors' code runs it."""
    return copy.deepcopy(model.module).to(device, memory_format=torch.contiguous_format)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` rounds after one warm-up call each.

    The functions are interleaved round by round, so load from other processes hits all of them alike.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def fresh_process_sides(module: str, args: list, env_var: str, modes: Sequence[str]) -> dict[str, dict]:
    """``vpcost_utils.bench.<module>._child(*args)`` once per mode, each in a fresh process with ``env_var=mode``
    (a setting that a process reads once, at its start: the allocator, the arithmetic pin); each side's JSON."""
    import json
    import os
    import subprocess
    import sys

    code = (f"import json; from vpcost_utils.bench.{module} import _child; "
            f"print(json.dumps(_child(*json.loads({json.dumps(args)!r}))))")
    sides = {}
    for mode in modes:
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, env_var: mode}, capture_output=True,
                              text=True, check=True)
        sides[mode] = json.loads(done.stdout.splitlines()[-1])
    return sides
