"""Procedurally generated image tasks: the smoke profile's offline stand-ins for ImageNet and the targets.

Nothing is downloaded: every image is drawn here from a seed, in seconds, identically on every
machine. The source task (``synth_source``, 100 classes = 10 shapes x 10 colours, objects at
random scale and position on a noisy background) pretrains the small source CNN. The targets
reuse the same visual vocabulary in new combinations at a small native size, so that, as with
ImageNet and CIFAR-10, some source features transfer and a label mapping has something to find:

- ``synth_shapes``: 10 classes, each a shape in its own colour (2 in 5 images in a random colour), 32 px,
  noisier and at new scales.
- ``synth_patterns``: 8 classes, shape x (light / dark background), 32 px, noisier.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), upsampled
  to 32 px with nearest neighbours; 200 train / 300 test images, stratified with seed 0. Real data, offline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import DatasetInfo, ImageSplit, register_dataset

SHAPES = ("disk", "square", "triangle", "cross", "ring", "hbars", "vbars", "checker", "diamond", "star")
HUES = (0.0, 0.08, 0.16, 0.3, 0.45, 0.55, 0.66, 0.75, 0.85, 0.93)
COLOUR_NAMES = ("red", "orange", "yellow", "green", "teal", "cyan", "blue", "violet", "magenta", "pink")


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    return v[..., None] - v[..., None] * s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _shape_mask(shape: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mask of one shape on (rotated, scaled) centred coordinates x, y; the object spans about [-0.9, 0.9]."""
    r = torch.sqrt(x**2 + y**2)
    box = (x.abs() < 0.8) & (y.abs() < 0.8)
    if shape == 0:
        return r < 0.8
    if shape == 1:
        return (x.abs() < 0.7) & (y.abs() < 0.7)
    if shape == 2:
        return (y > -0.6) & (y < 0.9 - 1.6 * x.abs())
    if shape == 3:
        return ((x.abs() < 0.25) | (y.abs() < 0.25)) & (r < 0.9)
    if shape == 4:
        return (r < 0.85) & (r > 0.5)
    if shape == 5:
        return (torch.cos(y * 3 * math.pi) > 0) & box
    if shape == 6:
        return (torch.cos(x * 3 * math.pi) > 0) & box
    if shape == 7:
        return ((torch.floor(x * 2.5) + torch.floor(y * 2.5)) % 2 == 0) & box
    if shape == 8:
        return (x.abs() + y.abs()) < 0.85
    return r < 0.45 + 0.4 * torch.cos(5 * torch.atan2(y, x)).clamp(min=0)


def _shape_masks(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Masks [N, H, W] of each sample's shape on centred coordinates u, v (one pass per shape)."""
    cos, sin = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
    x, y = u * cos - v * sin, u * sin + v * cos
    masks = torch.zeros_like(u)
    for k in shape.unique().tolist():
        rows = shape == k
        masks[rows] = _shape_mask(k, x[rows], y[rows]).float()
    return masks


def render(shape: torch.Tensor, hue: torch.Tensor, size: int, generator: torch.Generator, *,
           scale: tuple[float, float] = (0.5, 0.95), jitter: float = 0.15, background: torch.Tensor | None = None,
           noise: float = 0.08) -> torch.Tensor:
    """Render one object per sample: uint8 [N, 3, size, size].

    ``shape`` indexes SHAPES, ``hue`` is in [0, 1] (or NaN for a random hue), ``background`` is the
    per-sample background brightness (random when None). Scale is the object's size as a fraction
    of the image; jitter moves its centre.
    """
    n = len(shape)
    g = generator
    grid = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=g)
    cx, cy = (torch.rand(2, n, generator=g) * 2 - 1) * jitter
    u = (xx[None] - cx[:, None, None]) / s[:, None, None]
    v = (yy[None] - cy[:, None, None]) / s[:, None, None]
    rot = (torch.rand(n, generator=g) - 0.5) * 0.6
    mask = _shape_masks(shape, u, v, rot)
    hue = torch.where(torch.isnan(hue), torch.rand(n, generator=g), hue)
    sat = 0.65 + 0.35 * torch.rand(n, generator=g)
    val = 0.7 + 0.3 * torch.rand(n, generator=g)
    colour = _hsv_to_rgb(hue, sat, val)  # [N, 3]
    if background is None:
        background = torch.rand(n, generator=g) * 0.6 + 0.1
    # A smooth random background field, so the object is not the only structure in the image.
    low = F.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False)
    bg = (background[:, None, None, None] + 0.25 * (low - 0.5)).expand(n, 3, size, size)
    img = bg * (1 - mask[:, None]) + colour[:, :, None, None] * mask[:, None]
    img = img + noise * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _balanced_labels(num_classes: int, per_class: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=generator)]


def _seed(name: str, split: str, base: int) -> int:
    return base + sum(map(ord, name)) * 7 + (0 if split == "train" else 1_000_003)


def source_split(split: str, per_class: int, size: int = 64, seed: int = 0) -> ImageSplit:
    """The 100-class source task: class = shape * 10 + colour, objects at 15-95 % of the image."""
    g = torch.Generator().manual_seed(_seed("synth_source", split, seed))
    labels = _balanced_labels(100, per_class, g)
    hue = torch.tensor(HUES)[labels % 10] + (torch.rand(len(labels), generator=g) - 0.5) * 0.04
    images = render(labels // 10, hue % 1.0, size, g, scale=(0.15, 0.95), jitter=0.45)
    classes = [f"{COLOUR_NAMES[c % 10]} {SHAPES[c // 10]}" for c in range(100)]
    return ImageSplit("synth_source", split, images, labels, classes)


#: synth_shapes: class k is shape k drawn in one fixed colour, so each target class has a related source
#: class (as CIFAR-10's classes have ImageNet relatives), seen at a new size, position and background.
_SHAPE_COLOURS = (0, 3, 6, 9, 2, 5, 8, 1, 4, 7)


def _shapes_task(info: DatasetInfo, split: str, root: str | None, size: int) -> ImageSplit:
    g = torch.Generator().manual_seed(_seed(info.name, split, 0))
    labels = _balanced_labels(10, 20 if split == "train" else 30, g)
    hue = torch.tensor(HUES)[torch.tensor(_SHAPE_COLOURS)[labels]] + (torch.rand(len(labels), generator=g) - 0.5) * 0.06
    # Two in five images take a random colour, so colour alone does not give the class away.
    off_colour = torch.rand(len(labels), generator=g) < 0.4
    hue = torch.where(off_colour, float("nan"), hue % 1.0)
    images = render(labels, hue, size, g, scale=(0.35, 0.85), jitter=0.25, noise=0.2)
    classes = [f"{COLOUR_NAMES[_SHAPE_COLOURS[k]]} {SHAPES[k]}" for k in range(10)]
    return ImageSplit(info.name, split, images, labels, classes)


_PATTERN_SHAPES = (0, 3, 5, 9)


def _patterns_task(info: DatasetInfo, split: str, root: str | None, size: int) -> ImageSplit:
    g = torch.Generator().manual_seed(_seed(info.name, split, 0))
    labels = _balanced_labels(8, 20 if split == "train" else 30, g)
    shape = torch.tensor(_PATTERN_SHAPES)[labels % 4]
    background = torch.where(labels < 4, 0.8, 0.15) + 0.05 * torch.rand(len(labels), generator=g)
    images = render(shape, torch.full((len(labels),), float("nan")), size, g, background=background, noise=0.12)
    classes = [f"{SHAPES[s]} on {tone}" for tone in ("light", "dark") for s in _PATTERN_SHAPES]
    return ImageSplit(info.name, split, images, labels, classes)


def _digits_task(info: DatasetInfo, split: str, root: str | None, size: int) -> ImageSplit:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels = torch.as_tensor(digits.target, dtype=torch.long)
    # 20 train and 30 test images per class keep the smoke profile's runs small; the rest is unused.
    train_idx, rest = train_test_split(range(len(labels)), train_size=200, stratify=digits.target, random_state=0)
    test_idx, _ = train_test_split(rest, train_size=300, stratify=digits.target[rest], random_state=0)
    index = torch.as_tensor(train_idx if split == "train" else test_idx)
    gray = torch.as_tensor(digits.images[index.numpy()], dtype=torch.float32)[:, None] / 16.0
    gray = F.interpolate(gray, size=(size, size), mode="nearest")
    images = (gray.expand(-1, 3, -1, -1) * 255).round().to(torch.uint8)
    return ImageSplit(info.name, split, images.contiguous(), labels[index], [str(d) for d in range(10)])


register_dataset(DatasetInfo("synth_shapes", _shapes_task, input_size=32, num_classes=10, offline=True,
                             notes="generated: 10 shapes in fixed colours, 200 train / 300 test"))
register_dataset(DatasetInfo("synth_patterns", _patterns_task, input_size=32, num_classes=8, offline=True,
                             notes="generated: 4 shapes x light/dark background, 160 train / 240 test"))
register_dataset(DatasetInfo("digits", _digits_task, input_size=32, num_classes=10, offline=True,
                             notes="scikit-learn's bundled 8x8 digits, nearest-upsampled, 200 train / 300 test "
                                   "stratified (seed 0)"))
