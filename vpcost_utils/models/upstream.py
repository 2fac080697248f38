"""Upstream ImageNet top-1 of a registry model: measured on a validation folder, else the published figure.

The paper's premise is that compressed models match their dense parents upstream; Figure 14 shows it.
With an ImageNet-style validation folder (ImageFolder layout, one folder per synset) we measure it
with the standard evaluation: resize the short side (256, or what the weights were published with),
center crop 224, ImageNet normalisation, bicubic for RigL as its converters evaluate it. Without one
we return the published number from the registry and say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
from torchvision.transforms import InterpolationMode

from ..errors import SpecError
from ._registry import create_model, get_entry

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def eval_transform(resize: int = 256, crop: int = 224, interpolation: str = "bilinear",
                   mean: tuple[float, ...] = (0.485, 0.456, 0.406),
                   std: tuple[float, ...] = (0.229, 0.224, 0.225)) -> transforms.Compose:
    """Standard ImageNet evaluation: resize the short side, center crop, to tensor, normalise."""
    return transforms.Compose([
        transforms.Resize(resize, interpolation=_INTERPOLATION[interpolation]),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def _even_subset(n: int, limit: int | None) -> list[int]:
    # Validation folders are sorted by class, so a prefix would cover a few classes only; spread the picks.
    if limit is None or limit >= n:
        return list(range(n))
    return [int(i * n / limit) for i in range(limit)]


def upstream_top1(name: str, val_root: str | Path | None = None, *, device: str | torch.device = "cpu",
                  batch_size: int = 64, limit: int | None = None, substitute: bool = False,
                  num_workers: int = 0) -> dict[str, Any]:
    """ImageNet top-1 (%) of registry model ``name``.

    Args:
        name: registry name, e.g. ``resnet50/acdc-90``.
        val_root: ImageFolder-style validation folder with one sub-folder per class, sorted names giving the
            model's class order (the 1000 ImageNet synsets ``n01440764`` ... sort into logit order). ``None``:
            return the published figure.
        device: where to run the model.
        batch_size: evaluation batch size.
        limit: evaluate at most this many images, spread evenly over the folder (a quick check).
        substitute: allow the labelled substitute when the real checkpoint is missing.
        num_workers: DataLoader workers.

    Returns:
        ``{"name", "kind": "measured" | "published", "top1", "published_top1", ...}``; a measured result adds
        ``n_images``, ``val_root``, ``resize``, ``interpolation`` and ``substitute``.
    """
    entry = get_entry(name)
    if val_root is None:
        return {"name": name, "kind": "published", "top1": entry.top1, "published_top1": entry.top1,
                "source": entry.source}
    root = Path(val_root)
    if not root.is_dir():
        raise SpecError(f"validation folder {root} does not exist; pass an ImageFolder-style ImageNet val folder "
                        "(one sub-folder per synset) or val_root=None for the published top-1")
    model = create_model(name, substitute=substitute, device=device)
    resize = int(model.provenance.get("eval_resize", 256))
    interpolation = model.provenance.get("interpolation", "bilinear")
    folder = datasets.ImageFolder(str(root), transform=eval_transform(resize, model.canvas_size, interpolation,
                                                                      model.mean, model.std))
    if len(folder.classes) != model.num_classes:
        raise SpecError(f"{root} has {len(folder.classes)} class folders but {name} has {model.num_classes} "
                        "classes; the sorted folder names must line up with the model's logits (all 1000 synsets)")
    data = Subset(folder, _even_subset(len(folder), limit))
    correct = 0
    with torch.inference_mode():
        for images, labels in DataLoader(data, batch_size=batch_size, num_workers=num_workers):
            logits = model.module(images.to(device))
            correct += int((logits.argmax(1).cpu() == labels).sum())
    return {"name": name, "kind": "measured", "top1": 100.0 * correct / len(data), "published_top1": entry.top1,
            "n_images": len(data), "val_root": str(root), "resize": resize, "interpolation": interpolation,
            "substitute": model.provenance.get("substitute", False)}
