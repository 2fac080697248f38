"""A few real photographs that installed libraries ship, for tests and as unlabelled calibration images.

scikit-learn always brings two (``china``, ``flower``: ``load_sample_images``). scikit-image, when it is
installed, adds the colour photographs bundled in its wheel (no download): ``chelsea`` (a tabby cat),
``coffee``, ``astronaut``, ``rocket`` and ``motorcycle`` (left view of its stereo pair). Without
scikit-image the two scikit-learn images are all there is; nothing here touches the network.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["calibration_crops", "natural_images"]

SKIMAGE_NAMES = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")


def _chw(array: np.ndarray) -> torch.Tensor:
    # a copy: the libraries hand out read-only arrays, which torch refuses to share memory with
    return torch.from_numpy(np.array(array[..., :3], dtype=np.uint8)).permute(2, 0, 1).contiguous()


@lru_cache(maxsize=1)
def _decoded() -> tuple[tuple[str, torch.Tensor], ...]:
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    images = {Path(name).stem: _chw(img) for name, img in zip(sample.filenames, sample.images, strict=True)}
    try:
        from skimage import data
    except ImportError:  # optional: the two scikit-learn photographs still serve
        pass
    else:
        loaders = {"astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee,
                   "motorcycle": lambda: data.stereo_motorcycle()[0], "rocket": data.rocket}
        images.update({name: _chw(loaders[name]()) for name in SKIMAGE_NAMES})
    return tuple(sorted(images.items()))


def natural_images() -> dict[str, torch.Tensor]:
    """``{name: uint8 [3, H, W] RGB}``, sorted by name; fresh copies, so callers may modify them."""
    return {name: image.clone() for name, image in _decoded()}


def calibration_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` random resized crops (area 25-100 %, aspect 3/4-4/3), half flipped: uint8 ``[n, 3, size, size]``.

    The photographs are visited round-robin in a seeded order, so every one is used when ``n`` is at
    least their number. The same ``(n, size, seed)`` gives the same tensor on every machine.
    """
    if n < 0 or size < 1:
        raise ValueError(f"calibration_crops needs n >= 0 and size >= 1, got n={n}, size={size}")
    images = [image for _, image in _decoded()]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        image = images[order[i % len(images)]]
        out[i] = _random_resized_crop(image, size, g)
    return out


def _random_resized_crop(image: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    _, h, w = image.shape
    area = float(torch.empty(()).uniform_(0.25, 1.0, generator=g)) * h * w
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
