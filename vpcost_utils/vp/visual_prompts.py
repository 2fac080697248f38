"""Visual prompts for image classifiers.

``ExpansivePrompt`` is ILM-VP's prompt (reference-algorithms.md §1a, must-match 1): the image
keeps its native size (32 or 128 px for the paper's datasets), is zero-padded into the centre of
the model's canvas (224 for ImageNet models), ``sigmoid(theta) * border_mask`` is added with
theta initialised to 0 (a grey frame), and only then the model's normalisation is applied. Only
the border frame is trainable; nothing is clamped because the sigmoid already bounds it.
"""

from __future__ import annotations

import torch
from torch import nn


class ExpansivePrompt(nn.Module):
    """Pad a ``[B, 3, in, in]`` image in [0, 1] into a ``canvas`` frame, add the learned border, normalise."""

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        if input_size > canvas:
            raise ValueError(f"input size {input_size} does not fit in a {canvas}-px canvas")
        self.canvas, self.input_size = canvas, input_size
        # The reference's split: left/top gets the extra pixel when canvas - input is odd.
        self.pad_before = (canvas - input_size + 1) // 2
        self.theta = nn.Parameter(torch.zeros(3, canvas, canvas))
        mask = torch.ones(1, canvas, canvas)
        a = self.pad_before
        mask[:, a:a + input_size, a:a + input_size] = 0
        self.register_buffer("mask", mask)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        a, b = self.pad_before, self.canvas - self.input_size - self.pad_before
        return nn.functional.pad(images, (a, b, a, b))

    def frame(self) -> torch.Tensor:
        """The additive frame in pixel space, ``sigmoid(theta) * mask`` ([3, canvas, canvas])."""
        return torch.sigmoid(self.theta) * self.mask

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            raise ValueError(f"prompt expects {self.input_size}-px images, got {tuple(images.shape[-2:])}")
        return (self.pad(images) + self.frame() - self.mean) / self.std
