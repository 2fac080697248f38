"""Real photographs that installed libraries ship, for tests and as unlabelled calibration images.

scikit-learn always brings two (``china``, ``flower``: ``load_sample_images``) and matplotlib one
(``grace_hopper``, in its ``sample_data``). scikit-image, when it is installed, adds what its wheel
bundles (no download): colour ``chelsea`` (a tabby cat), ``coffee``, ``astronaut``, ``rocket``,
``motorcycle`` (left view of its stereo pair), ``hubble_deep_field``, ``retina``,
``immunohistochemistry``, and grey ``camera``, ``brick``, ``grass``, ``coins`` (given three equal
channels). Nothing here touches the network.

Every photograph has one role. ``HELD_OUT`` ones (the cat, the espresso, Grace Hopper: three photos
with a clear ImageNet label) never enter calibration or recovery; they only measure how far a
compressed model's predictions drift from the dense model's (``built/agreement.py``). The split is by
photograph, not by crop: crops of one photo are near-duplicates of each other.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["HELD_OUT", "calibration_crops", "distillation_crops", "natural_images", "photographs"]

SKIMAGE_COLOUR = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle",
                  "retina", "rocket")
SKIMAGE_GREY = ("brick", "camera", "coins", "grass")
HELD_OUT = ("chelsea", "coffee", "grace_hopper")
ROLES = ("calibration", "held_out", "all")


def _chw(array: np.ndarray) -> torch.Tensor:
    # a copy: the libraries hand out read-only arrays, which torch refuses to share memory with
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(np.array(array[..., :3], dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _matplotlib_images() -> dict[str, torch.Tensor]:
    try:
        from matplotlib import cbook
        from PIL import Image
    except ImportError:
        return {}
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return {"grace_hopper": _chw(np.asarray(image.convert("RGB")))}


@lru_cache(maxsize=1)
def _decoded() -> tuple[tuple[str, torch.Tensor], ...]:
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    images = {Path(name).stem: _chw(img) for name, img in zip(sample.filenames, sample.images, strict=True)}
    images.update(_matplotlib_images())
    try:
        from skimage import data
    except ImportError:  # optional: the scikit-learn and matplotlib photographs still serve
        pass
    else:
        loaders = {name: getattr(data, name) for name in SKIMAGE_COLOUR + SKIMAGE_GREY if name != "motorcycle"}
        loaders["motorcycle"] = lambda: data.stereo_motorcycle()[0]
        images.update({name: _chw(load()) for name, load in loaders.items()})
    return tuple(sorted(images.items()))


def natural_images() -> dict[str, torch.Tensor]:
    """``{name: uint8 [3, H, W] RGB}`` of every photograph, sorted by name; fresh copies, so callers may modify them."""
    return {name: image.clone() for name, image in _decoded()}


def photographs(role: str = "calibration") -> dict[str, torch.Tensor]:
    """The photographs of one role: ``"calibration"`` (all but ``HELD_OUT``), ``"held_out"`` or ``"all"``."""
    if role not in ROLES:
        raise ValueError(f"unknown photograph role {role!r}; choose one of {', '.join(ROLES)}")
    images = natural_images()
    if role == "all":
        return images
    return {k: v for k, v in images.items() if (k in HELD_OUT) == (role == "held_out")}


def _photos_for(role: str, need: int = 1) -> list[torch.Tensor]:
    images = list(photographs(role).values())
    if len(images) < need:
        raise ValueError(f"{len(images)} {role} photograph(s) found, {need} needed: install scikit-image "
                         "(a dependency of this package), whose wheel carries them")
    return images


def calibration_crops(n: int, size: int, seed: int, role: str = "calibration") -> torch.Tensor:
    """``n`` random resized crops (area 25-100 %, aspect 3/4-4/3), half flipped: uint8 ``[n, 3, size, size]``.

    Crops come from the photographs of ``role`` only (default: never the held-out ones), visited
    round-robin in a seeded order, so every one is used when ``n`` is at least their number. The same
    ``(n, size, seed, role)`` gives the same tensor on every machine.
    """
    if n < 0 or size < 1:
        raise ValueError(f"calibration_crops needs n >= 0 and size >= 1, got n={n}, size={size}")
    images = _photos_for(role)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        image = images[order[i % len(images)]]
        out[i] = _random_resized_crop(image, size, g)
    return out


def distillation_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` heavily augmented crops of the calibration photographs, uint8 ``[n, 3, size, size]``.

    The augmentation of single-image distillation (Asano & Saeed, arXiv 2112.00725): random resized
    crops of 8-100 % of the area, flips, colour jitter (brightness, contrast, saturation +-40 %), and
    CutMix on half of the crops (a random box of another crop pasted in). Held-out photographs never
    appear. Deterministic in ``(n, size, seed)``.
    """
    if n < 0 or size < 1:
        raise ValueError(f"distillation_crops needs n >= 0 and size >= 1, got n={n}, size={size}")
    images = _photos_for("calibration")
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(images), (n,), generator=g).tolist()
    out = torch.stack([_jitter(_random_resized_crop(images[i], size, g, min_area=0.08), g) for i in picks]) \
        if n else torch.empty(0, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        if bool(torch.rand((), generator=g) < 0.5):
            _cutmix(out[i], out[int(torch.randint(0, n, (), generator=g))], g)
    return out


def _jitter(crop: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = crop.float()
    b, c, s = (float(v) for v in torch.empty(3).uniform_(0.6, 1.4, generator=g))
    x = x * b
    x = (x - x.mean()) * c + x.mean()
    grey = x.mean(0, keepdim=True)
    x = (x - grey) * s + grey
    return x.round().clamp(0, 255).to(torch.uint8)


def _cutmix(target: torch.Tensor, source: torch.Tensor, g: torch.Generator) -> None:
    _, h, w = target.shape
    ratio = float(torch.rand((), generator=g)) ** 0.5  # box side for a uniform area fraction
    bh, bw = max(1, round(h * ratio)), max(1, round(w * ratio))
    top, left = int(torch.randint(0, h - bh + 1, (), generator=g)), int(torch.randint(0, w - bw + 1, (), generator=g))
    target[:, top:top + bh, left:left + bw] = source[:, top:top + bh, left:left + bw]


def _random_resized_crop(image: torch.Tensor, size: int, g: torch.Generator, min_area: float = 0.25) -> torch.Tensor:
    _, h, w = image.shape
    area = float(torch.empty(()).uniform_(min_area, 1.0, generator=g)) * h * w
    aspect = float(torch.empty(()).uniform_(np.log(3 / 4), np.log(4 / 3), generator=g).exp())
    ch = min(h, max(1, round((area / aspect) ** 0.5)))
    cw = min(w, max(1, round((area * aspect) ** 0.5)))
    top = int(torch.randint(0, h - ch + 1, (), generator=g))
    left = int(torch.randint(0, w - cw + 1, (), generator=g))
    crop = image[None, :, top:top + ch, left:left + cw].float()
    # antialias: a large crop shrunk to a small canvas would otherwise alias into high-frequency noise
    crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    if bool(torch.rand((), generator=g) < 0.5):
        crop = crop.flip(-1)
    return crop.round().clamp(0, 255).to(torch.uint8)
