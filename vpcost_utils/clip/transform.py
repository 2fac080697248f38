"""CLIP's image transform as tensor ops: bicubic resize of the short side, then a centre crop.

The authors' fork feeds CLIP ``Resize(S, BICUBIC)`` + ``CenterCrop(S)`` on a PIL image (CLIP's
own ``_transform``), then ``ToTensor`` and CLIP's normalisation. This module redoes the first two
steps on uint8 tensors, on any device, so the cache can hold images at their decoded size and the
S-px batches are built where the model runs.

It follows Pillow's resampling arithmetic, so the result equals PIL's byte for byte:

- output size as torchvision computes it: the short side becomes S, the long side
  ``int(S * long / short)`` (truncated); crop offsets ``int(round((n - S) / 2))``;
- separable convolution with PIL's bicubic kernel (a = -0.5), widened by the scale factor when
  shrinking (antialiasing), taps normalised to sum 1, then rounded to integers of 22 fractional
  bits as Pillow's 8-bit path does;
- the horizontal pass first, rounded and clipped to uint8, then the vertical pass, rounded and
  clipped again (Pillow keeps the intermediate image in 8 bits).

The sums are exact integers in float64 (at most about 2^31), so the result does not depend on the
summation order of the matrix multiply (CPU or GPU).
"""

from __future__ import annotations

import functools

import torch

#: Fractional bits of Pillow's integer filter coefficients for 8-bit images (32 - 8 - 2).
PRECISION_BITS = 22
_ONE = float(1 << PRECISION_BITS)
_HALF = float(1 << (PRECISION_BITS - 1))
_BICUBIC_A = -0.5  # Pillow's bicubic kernel (torch's plain bicubic uses -0.75)


def _bicubic(x: float) -> float:
    x = abs(x)
    if x < 1.0:
        return ((_BICUBIC_A + 2.0) * x - (_BICUBIC_A + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * _BICUBIC_A
    return 0.0


def output_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(resized height, resized width, crop top, crop left) of ``Resize(size)`` + ``CenterCrop(size)``."""
    if height <= width:
        new_h, new_w = size, int(size * width / height)
    else:
        new_h, new_w = int(size * height / width), size
    return new_h, new_w, int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))


@functools.lru_cache(maxsize=512)
def _coefficients(in_size: int, out_size: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Per output pixel: (first input index, integer taps), as Pillow's ``precompute_coeffs``."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [_bicubic((x + xmin - center + 0.5) / filterscale) for x in range(xmax)]
        total = sum(taps)
        if total != 0.0:
            taps = [t / total for t in taps]
        # C's (int) cast truncates toward zero; Pillow adds +-0.5 first, i.e. rounds half away from zero
        rows.append((xmin, tuple(int(t * _ONE + (0.5 if t >= 0 else -0.5)) for t in taps)))
    return tuple(rows)


def resample_matrix(in_size: int, out_size: int, start: int, count: int) -> torch.Tensor:
    """float64 ``[count, in_size]``: rows ``start .. start+count-1`` of the integer resampling matrix."""
    matrix = torch.zeros(count, in_size, dtype=torch.float64)
    for row, (xmin, taps) in enumerate(_coefficients(in_size, out_size)[start:start + count]):
        matrix[row, xmin:xmin + len(taps)] = torch.tensor(taps, dtype=torch.float64)
    return matrix


@functools.lru_cache(maxsize=512)
def _matrix_on(in_size: int, out_size: int, start: int, count: int, device: str) -> torch.Tensor:
    # Built once per (size, device): datasets of varied sizes (GTSRB) reuse a few hundred matrices.
    return resample_matrix(in_size, out_size, start, count).to(device)


def _round_to_uint8_range(x: torch.Tensor) -> torch.Tensor:
    # Pillow's clip8: (sum + 2^21) >> 22, clamped to 0..255
    return torch.floor((x + _HALF) / _ONE).clamp_(0, 255)


def resize_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's ``Resize(size, BICUBIC)`` + ``CenterCrop(size)`` of uint8 ``[B, 3, H, W]`` images of one shape.

    Returns uint8 ``[B, 3, size, size]`` on the images' device, equal to PIL's result.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"resize_crop needs uint8 [B, C, H, W] images, got {images.dtype} {tuple(images.shape)}")
    height, width = int(images.shape[-2]), int(images.shape[-1])
    if min(height, width) < 1:
        raise ValueError(f"cannot resize an empty {height}x{width} image")
    new_h, new_w, top, left = output_geometry(height, width, size)
    if (new_h, new_w) == (height, width) and (height, width) == (size, size):
        return images  # Pillow returns a copy: nothing to resample or crop
    device = str(images.device)
    horizontal = _matrix_on(width, new_w, left, size, device)
    vertical = _matrix_on(height, new_h, top, size, device)
    x = images.to(torch.float64)
    x = _round_to_uint8_range(x @ horizontal.T)  # [B, C, H, size], rounded to 8 bits as Pillow's temp image
    x = _round_to_uint8_range(vertical @ x)  # [B, C, size, size]
    return x.to(torch.uint8)


def stored_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The size at which the CLIP cache keeps an image: decoded, or ``size`` x ``size`` when it is larger.

    An image whose short side is at least ``size`` is only ever shrunk by CLIP's transform, and
    its S x S output is smaller than the image, so the cache keeps that output (computed by PIL,
    the reference itself). ``resize_crop`` leaves an S x S image unchanged.
    """
    return (size, size) if min(height, width) >= size else (height, width)
