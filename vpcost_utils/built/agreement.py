"""How much of the dense ImageNet function a compressed model keeps, measured without ImageNet.

Every number comes from the held-out photographs only (``natural_images.HELD_OUT``: never seen by any
calibration or recovery step), so a recovery recipe cannot have fitted them:

- ``agreement_{224,128}``: top-1 agreement (%) with the dense model on 256 random crops of those
  photographs, at the weights' own 224 px and at the mini profile's 128-px canvas;
- ``kl_{224,128}``: mean KL(dense || model) of the ImageNet softmax on the same crops (nats);
- ``labelled``: the top-1 class of the dense model and of the model on the centre crop of each held-out
  photograph (a tabby cat, an espresso, Grace Hopper in uniform): the drift on images with a known label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .natural_images import HELD_OUT, calibration_crops, photographs

CROPS, SEED, SIZES = 256, 1, (224, 128)


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` to the model's input format."""
    return (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _centre(image: torch.Tensor, size: int) -> torch.Tensor:
    _, h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[None, :, top:top + side, left:left + side].float()
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False).round()


@torch.no_grad()
def _logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([module(b) for b in x.split(64)])


@torch.no_grad()
def upstream_agreement(module: nn.Module, dense: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                       class_names: list[str] | None = None) -> dict:
    """Agreement, KL and labelled drift of ``module`` against ``dense`` on the held-out photographs."""
    module.eval(), dense.eval()
    out: dict = {"held_out_photographs": list(HELD_OUT), "crops": CROPS}
    for size in SIZES:
        x = normalise(calibration_crops(CROPS, size, SEED, role="held_out"), mean, std)
        ours, ref = _logits(module, x), _logits(dense, x)
        out[f"agreement_{size}"] = round(100.0 * float((ours.argmax(1) == ref.argmax(1)).float().mean()), 2)
        kl = F.kl_div(ours.log_softmax(1), ref.log_softmax(1), log_target=True, reduction="batchmean")
        out[f"kl_{size}"] = round(float(kl), 4)
    photos = photographs("held_out")
    x = normalise(torch.cat([_centre(photos[name], 224) for name in photos]), mean, std)
    ours, ref = _logits(module, x).argmax(1).tolist(), _logits(dense, x).argmax(1).tolist()
    name = (lambda i: class_names[i]) if class_names else str
    out["labelled"] = {photo: {"dense": name(r), "model": name(o)}
                       for photo, r, o in zip(photos, ref, ours, strict=True)}
    out["labelled_same"] = sum(r == o for r, o in zip(ref, ours, strict=True))
    return out
