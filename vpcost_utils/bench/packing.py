"""Section 4 of the bench: K runs' prompted batches in one backbone pass vs K separate steps."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models import SourceModel
from ..vp.visual_prompts import ExpansivePrompt
from .common import NUM_CLASSES, best_seconds, emit, emit_ratio, note, our_backbone, random_split


def _packing_steps(backbone: nn.Module, prompts: list[ExpansivePrompt], optimizers: list[torch.optim.Optimizer],
                   mapping: torch.Tensor, xs: list[torch.Tensor], ys: list[torch.Tensor]
                   ) -> tuple[Callable[[], None], Callable[[], None]]:
    """(K separate training steps, one packed step) for K runs' batches ``xs``/``ys``."""

    def separate() -> None:
        for p, opt, x, y in zip(prompts, optimizers, xs, ys, strict=True):
            loss = F.cross_entropy(backbone(p(x))[:, mapping], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def packed() -> None:
        logits = backbone(torch.cat([p(x) for p, x in zip(prompts, xs, strict=True)]))[:, mapping]
        # Sum of per-run mean losses: each prompt gets exactly its own run's gradient.
        loss = sum(F.cross_entropy(chunk, y) for chunk, y in zip(logits.split([len(y) for y in ys]), ys, strict=True))
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()

    return separate, packed


def packing_lines(model: SourceModel, device: torch.device, input_size: int, runs: int, repeats: int,
                  batch_sizes: tuple[tuple[str, int], ...] = (("1-shot", 8), ("10-shot", 32))) -> dict[str, float]:
    """K runs sharing one frozen backbone: K separate training steps vs one step on the K batches concatenated.

    The packed step is exact: the backbone is frozen and in eval mode (no cross-sample statistics), so each
    prompt's gradient is the one its own step would get. Only the speed is measured here.
    """
    backbone = our_backbone(model, device)
    prompts = [ExpansivePrompt(model.canvas_size, input_size, model.mean, model.std).to(device) for _ in range(runs)]
    optimizers = [torch.optim.Adam(p.parameters(), lr=0.01) for p in prompts]
    mapping = torch.arange(NUM_CLASSES, device=device)
    out = {}
    note(f"packing: {runs} runs, one training step each, best of {repeats}, images/s")
    for label, batch in batch_sizes:
        splits = [random_split(batch, input_size, seed=10 + k) for k in range(runs)]
        xs = [s.images.to(device).float().div(255) for s in splits]
        ys = [s.labels.to(device) for s in splits]
        separate, packed = _packing_steps(backbone, prompts, optimizers, mapping, xs, ys)
        t = best_seconds({"separate": separate, "packed": packed}, repeats, device)
        names = (f"packing {label} separate steps images/s", f"packing {label} packed step images/s")
        a = emit(names[0], runs * batch / t["separate"])
        b = emit(names[1], runs * batch / t["packed"])
        out[label] = emit_ratio(f"packing {label} ({runs} runs x batch {batch}) speedup", (names[1], b), (names[0], a))
    return out
