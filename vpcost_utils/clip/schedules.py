"""Per-step learning-rate schedules of the two CLIP set-ups.

``cosine_lr`` is Bahng et al.'s ``cosine_lr``: linear warm-up ``lr * (step + 1) / warmup``, then
``0.5 * (1 + cos(pi * e / E)) * lr`` over the remaining ``E`` steps. With ``warmup = 0`` it equals
``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total)`` stepped once per iteration, which is
what the ILM-VP CLIP script uses.
"""

from __future__ import annotations

import math

#: Bahng et al.'s warm-up length in optimizer steps.
BAHNG_WARMUP_STEPS = 1000


def cosine_lr(step: int, base_lr: float, total_steps: int, warmup_steps: int = 0) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / span)) * base_lr


def bahng_warmup(total_steps: int) -> int:
    """Bahng's 1000 warm-up steps, capped at a tenth of the run so short (few-shot) runs still decay."""
    return min(BAHNG_WARMUP_STEPS, total_steps // 10)
