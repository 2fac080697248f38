"""ImageNet-1k class names, offline: torchvision ships them in its weights metadata."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _categories() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in logit order (index i names logit i of every model here)."""
    return list(_categories())
