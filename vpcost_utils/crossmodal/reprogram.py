"""Token-to-image reprogramming (Neekhara et al.): a token sequence becomes a canvas for an image model.

Each token id looks up a learned ``3 * P * P`` vector, squashed by tanh into a ``P x P`` RGB patch.
Patches are laid out row by row (raster order) over an ``S x S`` canvas of ``(S // P)**2`` patches:
a sequence shorter than that repeats its last token (usually padding) into the unused patches,
a longer one is cut. When ``S`` is not a multiple of ``P`` the leftover strip stays 0. The tanh
canvas is read as a *normalised* image: un-normalise with the backbone's mean/std, clamp to [0, 1],
normalise again, so the backbone always sees a valid image.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError

#: Regulariser weight on the canvas norm (reg_alpha of the reference).
REG_ALPHA = 1e-4


def default_patch_size(canvas: int) -> int:
    """16 px as the reference for canvases of 128 px and more; 8 px for the smoke models' 64-px canvas."""
    return 16 if canvas >= 128 else 8


def check_canvas(canvas: int, patch: int) -> None:
    """Raise before training when not even one patch fits the canvas."""
    if patch < 1 or canvas < patch:
        raise SpecError(f"a {canvas}-px canvas is smaller than one {patch}-px patch; use a smaller patch size "
                        "or a backbone with a larger input")


class TokenReprogrammer(nn.Module):
    """``forward(tokens [B, L]) -> (backbone input [B, 3, S, S], tanh canvas [B, 3, S, S])``."""

    def __init__(self, vocab_size: int, canvas: int, patch: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        check_canvas(canvas, patch)
        self.canvas, self.patch, self.per_row = canvas, patch, canvas // patch
        self.num_patches = self.per_row**2
        self.embedding = nn.Embedding(vocab_size, 3 * patch * patch)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def fit_length(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cut to ``num_patches`` tokens, or repeat the last token up to it."""
        if tokens.shape[1] >= self.num_patches:
            return tokens[:, :self.num_patches]
        filler = tokens[:, -1:].expand(-1, self.num_patches - tokens.shape[1])
        return torch.cat([tokens, filler], dim=1)

    def tanh_canvas(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, p = len(tokens), self.per_row, self.patch
        patches = torch.tanh(self.embedding(self.fit_length(tokens))).view(b, n, n, 3, p, p)
        grid = patches.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, n * p, n * p)  # patch i -> row i // n, col i % n
        if n * p < self.canvas:
            grid = nn.functional.pad(grid, (0, self.canvas - n * p, 0, self.canvas - n * p))
        return grid

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        canvas = self.tanh_canvas(tokens)
        image = (canvas * self.std + self.mean).clamp(0, 1)
        return (image - self.mean) / self.std, canvas


def canvas_penalty(canvas: torch.Tensor) -> torch.Tensor:
    """``REG_ALPHA * ||canvas||_2 / batch``, the reference's regulariser."""
    return REG_ALPHA * canvas.norm(p=2) / len(canvas)
