"""The two visual prompts for CLIP, both added to the CLIP-normalised image at the model's resolution.

- ``BorderPrompt`` (ILM-VP's ``AdditiveVisualPrompt``): one ``3 x S x S`` parameter, zero at start,
  masked to a border frame of ``pad`` pixels; no sigmoid, no clamp.
- ``PadPrompter`` (Bahng et al.): four pads (top, bottom ``3 x pad x S``; left, right
  ``3 x (S - 2 pad) x pad``) drawn from N(0, 1); the centre gets nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError

#: Border width of both papers (30 px at 224 or 336).
PAD = 30


def default_pad(size: int) -> int:
    """30 px at 224 px and above; smaller models get the same fraction of 224 (9 px at 64)."""
    return PAD if size >= 224 else max(1, round(size * PAD / 224))


def _check(size: int, pad: int) -> None:
    if pad < 1 or 2 * pad >= size:
        raise SpecError(f"a {pad}-px prompt border does not fit a {size}-px image (need 1 <= pad < size / 2)")


class BorderPrompt(nn.Module):
    """Zero-initialised additive prompt on a ``pad``-px border frame (ILM-VP for CLIP)."""

    def __init__(self, size: int, pad: int):
        super().__init__()
        _check(size, pad)
        self.program = nn.Parameter(torch.zeros(3, size, size))
        mask = torch.ones(size, size)
        mask[pad:size - pad, pad:size - pad] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.program * self.mask


class PadPrompter(nn.Module):
    """Bahng et al.'s pad prompter: random-normal pads added around a clean centre."""

    def __init__(self, size: int, pad: int, generator: torch.Generator | None = None):
        super().__init__()
        _check(size, pad)
        self.size, self.pad = size, pad
        inner = size - 2 * pad
        self.pad_up = nn.Parameter(torch.randn(1, 3, pad, size, generator=generator))
        self.pad_down = nn.Parameter(torch.randn(1, 3, pad, size, generator=generator))
        self.pad_left = nn.Parameter(torch.randn(1, 3, inner, pad, generator=generator))
        self.pad_right = nn.Parameter(torch.randn(1, 3, inner, pad, generator=generator))

    def prompt(self) -> torch.Tensor:
        inner = self.size - 2 * self.pad
        centre = torch.zeros(1, 3, inner, inner, device=self.pad_up.device)
        middle = torch.cat([self.pad_left, centre, self.pad_right], dim=3)
        return torch.cat([self.pad_up, middle, self.pad_down], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.prompt()
