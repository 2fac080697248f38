"""Cross-modal label mapping: several source (ImageNet) classes per target class, fixed before training.

Following Neekhara et al.: feed one seeded uniform[-1, 1] noise image (treated as a normalised
input) to the frozen backbone, sort the source classes by *ascending* logit, and give target class
``c`` the classes at positions ``c, c + n, c + 2n, ...`` (round-robin, ``m`` per class). A target
logit is the max (reference default) or the mean of its ``m`` source logits.
"""

from __future__ import annotations

import torch

from ..errors import SpecError

#: Source labels per target class in the reference.
LABELS_PER_CLASS = 10
NOISE_SEED = 42


def labels_per_class(num_source: int, num_targets: int, wanted: int = LABELS_PER_CLASS) -> int:
    """``wanted`` (10), or fewer when the source has fewer than ``wanted * K`` classes (smoke models: 100)."""
    m = min(wanted, num_source // num_targets)
    if m < 1:
        raise SpecError(f"cannot give each of {num_targets} target classes a source class: the backbone has only "
                        f"{num_source}")
    return m


@torch.no_grad()
def noise_order(module: torch.nn.Module, canvas: int, seed: int = NOISE_SEED,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """Source classes sorted by ascending logit on a seeded uniform[-1, 1] noise image."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, canvas, canvas, generator=g) * 2 - 1
    return module(noise.to(device)).float().flatten().argsort().cpu()


def assign_labels(order: torch.Tensor, num_targets: int, per_class: int) -> torch.Tensor:
    """``[K, m]`` table: row ``c`` holds ``order[c + j * K]`` for ``j < m``."""
    if per_class * num_targets > len(order):
        raise SpecError(f"{num_targets} classes x {per_class} labels exceed the {len(order)} source classes")
    return order[: per_class * num_targets].view(per_class, num_targets).T.contiguous()


def mapped_logits(source_logits: torch.Tensor, table: torch.Tensor, reduce: str = "max") -> torch.Tensor:
    """``[B, K]`` target logits: max or mean over each class's source logits."""
    picked = source_logits[:, table.to(source_logits.device)]  # [B, K, m]
    if reduce == "max":
        return picked.amax(dim=2)
    if reduce == "mean":
        return picked.mean(dim=2)
    raise SpecError(f"unknown reduction {reduce!r}; choose 'max' or 'mean'")
