"""CLIP's images: cached at a bounded size, turned into S-px batches on the device with CLIP's transform.

At S = 336 a uint8 cache of every image would take about 83 GB for the seven CLIP datasets of the
paper (SVHN alone about 34 GB). The cache here keeps each image as decoded (RGB) when its short
side is below S, and CLIP's own transform output (PIL ``Resize(S, BICUBIC)`` + ``CenterCrop(S)``,
computed while decoding) when it is at least S: CLIP's transform only shrinks such an image and
its output is smaller than the image. Batches are then built by ``transform.resize_crop``, which
equals PIL's result byte for byte (and leaves S x S images as they are). About 7 GB in all
(docs/clip_and_crossmodal.md).

Images are stored ragged: one flat uint8 buffer, an offset and a (height, width) per image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.transforms.functional import pil_to_tensor
from tqdm.auto import tqdm

from .. import paths
from .._io import atomic_torch_save
from ..data import load_split, vision
from ..data.cache import decode_workers, read_cache
from .transform import resize_crop, stored_size

#: Bump when what the CLIP cache stores changes; old files are then ignored.
CLIP_CACHE_VERSION = "1"


@dataclass
class ClipImages:
    """A split's images at any sizes, its labels and class names; ``batch`` makes CLIP inputs.

    ``pixels`` is flat uint8; image ``i`` is ``pixels[offsets[i]:...]`` viewed as ``[3, *shapes[i]]``.
    """

    name: str
    split: str
    pixels: torch.Tensor
    offsets: torch.Tensor  # int64 [N]
    shapes: torch.Tensor  # int64 [N, 2]: height, width
    labels: torch.Tensor  # int64 [N]
    classes: list[str]

    def __post_init__(self) -> None:
        if not (len(self.offsets) == len(self.shapes) == len(self.labels)):
            raise ValueError(f"{self.name}/{self.split}: {len(self.offsets)} offsets, {len(self.shapes)} shapes and "
                             f"{len(self.labels)} labels")

    @classmethod
    def from_tensor(cls, name: str, split: str, images: torch.Tensor, labels: torch.Tensor,
                    classes: list[str]) -> ClipImages:
        """Wrap uint8 ``[N, 3, H, W]`` images of one size (the generated and small datasets)."""
        n, _, h, w = images.shape
        per = 3 * h * w
        return cls(name, split, images.contiguous().view(-1), torch.arange(n, dtype=torch.int64) * per,
                   torch.tensor([[h, w]], dtype=torch.int64).expand(n, 2).contiguous(), labels.long(), classes)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def image(self, i: int) -> torch.Tensor:
        h, w = (int(v) for v in self.shapes[i])
        start = int(self.offsets[i])
        return self.pixels[start:start + 3 * h * w].view(3, h, w)

    def subset(self, index: torch.Tensor) -> ClipImages:
        """The images at ``index`` (sharing the pixel buffer)."""
        return ClipImages(self.name, self.split, self.pixels, self.offsets[index], self.shapes[index],
                          self.labels[index], self.classes)

    def batch(self, index: torch.Tensor, size: int, device: torch.device | str) -> torch.Tensor:
        """uint8 ``[len(index), 3, size, size]`` on ``device``: CLIP's resize + centre crop of each image.

        Images of the same shape are transformed together.
        """
        index = torch.as_tensor(index, dtype=torch.int64).flatten()
        out = torch.empty(len(index), 3, size, size, dtype=torch.uint8, device=device)
        shapes = self.shapes[index]
        for shape in torch.unique(shapes, dim=0):
            rows = torch.nonzero((shapes == shape).all(dim=1)).flatten()
            stack = torch.stack([self.image(int(index[r])) for r in rows]).to(device, non_blocking=True)
            out[rows.to(out.device)] = resize_crop(stack, size)
        return out

    def nbytes(self) -> int:
        return int(self.pixels.numel())


# ------------------------------------------------------------------------------------------------------
# the bounded-size cache of the paper's vision datasets


class _ClipDecode:
    """PIL image -> RGB -> (CLIP's transform when the short side is >= size) -> uint8 [3, h, w]."""

    def __init__(self, size: int):
        self.size = size
        bicubic = transforms.InterpolationMode.BICUBIC
        self.reference = transforms.Compose([transforms.Resize(size, interpolation=bicubic),
                                             transforms.CenterCrop(size)])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        # RGB first: resizing an "L" image then converting equals converting first; a palette ("P")
        # image would otherwise be resized with nearest neighbours by Pillow. The torchvision loaders
        # of the fork's datasets already return RGB.
        image = image.convert("RGB")
        w, h = image.size
        if stored_size(h, w, self.size) != (h, w):
            image = self.reference(image)
        return pil_to_tensor(image)


def cache_path(name: str, split: str, size: int) -> Path:
    return paths.tensors_dir() / f"clip_{name}_{split}_{size}px_v{CLIP_CACHE_VERSION}-{vision.cache_version(name)}.pt"


def _pack(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = torch.tensor([list(im.shape[1:]) for im in images], dtype=torch.int64).view(-1, 2)
    sizes = 3 * shapes[:, 0] * shapes[:, 1]
    offsets = torch.cumsum(sizes, 0) - sizes
    pixels = torch.cat([im.reshape(-1) for im in images]) if images else torch.empty(0, dtype=torch.uint8)
    return pixels, offsets, shapes


def _decode(name: str, split: str, size: int, root: str | os.PathLike | None) -> ClipImages:
    # The fork's datasets, splits and labels exactly as the VP loader reads them (data/vision.py).
    opened = vision.open_split(name, split, root, _ClipDecode(size))
    src, index = opened.source, opened.index
    if src.raw is not None and src.native is not None and src.native < size:
        raw = src.raw(opened.dataset)[torch.from_numpy(index)].contiguous()  # native arrays (CIFAR, SVHN): no PIL
        return ClipImages.from_tensor(name, split, raw, opened.labels, opened.classes)
    loader = DataLoader(vision.ImagesOnly(opened.dataset, index), batch_size=64,
                        num_workers=decode_workers(len(index)), collate_fn=list)
    images: list[torch.Tensor] = []
    for chunk in tqdm(loader, desc=f"decode {name}/{split} for CLIP {size}px", unit="batch"):
        images.extend(im.clone() for im in chunk)
    pixels, offsets, shapes = _pack(images)
    return ClipImages(name, split, pixels, offsets, shapes, opened.labels, opened.classes)


def _save(data: ClipImages, path: Path, key: tuple) -> None:
    atomic_torch_save({"pixels": data.pixels.contiguous(), "offsets": data.offsets, "shapes": data.shapes,
                       "labels": data.labels, "classes": list(data.classes), "key": list(key)}, path)


def _load(path: Path, key: tuple, name: str, split: str) -> ClipImages | None:
    return read_cache(path, {"key": list(key)}, "CLIP image cache",
                      lambda p: ClipImages(name, split, p["pixels"], p["offsets"], p["shapes"], p["labels"],
                                           list(p["classes"])))


def load_clip_split(name: str, split: str, size: int, *, root: str | os.PathLike | None = None) -> ClipImages:
    """Split ``"train"``/``"test"`` of ``name`` for a CLIP model of resolution ``size``.

    The paper's vision datasets come from the bounded-size cache (built on first use); every other
    registered dataset (generated, MNIST, digits) is read at its own input size and resized on the
    device like the rest.
    """
    if name not in vision._SOURCES:
        data = load_split(name, split)
        return ClipImages.from_tensor(name, split, data.images, data.labels, list(data.classes))
    key = (name, split, size, CLIP_CACHE_VERSION, vision.cache_version(name))
    path = cache_path(name, split, size)
    data = _load(path, key, name, split)
    if data is None:
        data = _decode(name, split, size, root)
        _save(data, path, key)
    return data
