"""Visual prompts for image classifiers: a prompt maps ``[B, 3, in, in]`` images in [0, 1] to the model's
normalised ``[B, 3, canvas, canvas]`` input, and owns the only trainable tensors besides a FullyMap layer.

``ExpansivePrompt`` ("pad", the paper's) is ILM-VP's prompt (reference-algorithms.md §1a, must-match 1): the image
keeps its native size (32 or 128 px for the paper's datasets), is zero-padded into the centre of the model's canvas
(224 for ImageNet models), ``sigmoid(theta) * border_mask`` is added with theta initialised to 0 (a grey frame), and
only then the model's normalisation is applied. Only the border frame is trainable; nothing is clamped because the
sigmoid already bounds it.

Beyond the paper (issue #35; docs/reproduction.md, "Beyond ILM"), each read from its authors' code and written here:

- ``WatermarkPrompt`` ("watermark"): the full-image additive prompt of BLM (``tmlr-group/BayesianLM``
  ``reprogramming.py`` ``WatermarkingVR``, ``train_vm.py --reprogramming watermarking``) and of SMM's shared-mask
  baseline (``tmlr-group/SMM`` ``instance_model.py``, ``instancewise_vp.py``). The image is resized to the whole
  canvas (bilinear; the reference's ``transforms.Resize((224, 224))`` on the PIL image), normalised, and only then
  ``theta`` is added: a [3, canvas, canvas] tensor in normalised units, initialised to 0, with no sigmoid, no mask
  (BLM's mask is all ones at ``pad = 224 / 2``) and no clamp.
- ``ScaledPrompt`` ("autovp-scale"): AutoVP's learnable input scale (``IBM/AutoVP`` ``auto_vp/programs.py``
  ``Trainable_Resize`` and ``InputPadding``, ``auto_vp/training_process.py`` ``Training``). The image is zero-padded
  into the canvas as for "pad", the whole canvas is then scaled about its centre by a trainable factor (kornia's
  ``geometry.transform.scale``: bilinear, zeros outside, ``align_corners=True``), the grey ``sigmoid(theta)`` frame
  is added outside the central ``min(int(in * scale), canvas)`` pixels, then the normalisation. The scale starts
  at 1.5 (``demo.py --img_scale``) and is clamped to [0.1, 5.0] after every optimizer step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnknownNameError

#: AutoVP's defaults: ``demo.py --img_scale 1.5`` (the initial scale) and the clamp after every optimizer step in
#: ``training_process.py`` (``scale.clamp_(0.1, 5.0)``).
AUTOVP_INIT_SCALE = 1.5
AUTOVP_SCALE_RANGE = (0.1, 5.0)


class Prompt(nn.Module):
    """What every prompt shares: the model's normalisation as buffers, ``theta`` (the trainable pattern), the hook
    run after each optimizer step, and what a run's record says about the trained prompt."""

    theta: nn.Parameter

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.canvas, self.input_size = canvas, input_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def check_size(self, images: torch.Tensor) -> None:
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            raise ValueError(f"prompt expects {self.input_size}-px images, got {tuple(images.shape[-2:])}")

    def frame(self) -> torch.Tensor:
        """The additive pattern ([3, canvas, canvas]) as saved after chosen epochs (Fig. 20)."""
        raise NotImplementedError

    def constrain_(self) -> None:
        """Project the parameters back into their range after an optimizer step (a no-op unless a reference does)."""

    def summary(self) -> dict:
        """The trained prompt's own numbers for the run's record (beside its name); empty unless it has any."""
        return {}


class ExpansivePrompt(Prompt):
    """Pad a ``[B, 3, in, in]`` image in [0, 1] into a ``canvas`` frame, add the learned border, normalise."""

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]):
        if input_size > canvas:
            raise ValueError(f"input size {input_size} does not fit in a {canvas}-px canvas")
        super().__init__(canvas, input_size, mean, std)
        # The reference's split: left/top gets the extra pixel when canvas - input is odd.
        self.pad_before = (canvas - input_size + 1) // 2
        self.theta = nn.Parameter(torch.zeros(3, canvas, canvas))
        mask = torch.ones(1, canvas, canvas)
        a = self.pad_before
        mask[:, a:a + input_size, a:a + input_size] = 0
        self.register_buffer("mask", mask)

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        a, b = self.pad_before, self.canvas - self.input_size - self.pad_before
        return nn.functional.pad(images, (a, b, a, b))

    def frame(self) -> torch.Tensor:
        """The additive frame in pixel space, ``sigmoid(theta) * mask`` ([3, canvas, canvas])."""
        return torch.sigmoid(self.theta) * self.mask

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_size(images)
        return (self.pad(images) + self.frame() - self.mean) / self.std


class WatermarkPrompt(Prompt):
    """Resize a ``[B, 3, in, in]`` image in [0, 1] to the whole canvas, normalise, add the learned ``theta``."""

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__(canvas, input_size, mean, std)
        self.theta = nn.Parameter(torch.zeros(3, canvas, canvas))  # normalised units, as WatermarkingVR.program

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """Bilinear with PIL's filter (``antialias=True`` only matters when shrinking), kept in float: the reference
        resizes the uint8 PIL image, so its pixels are also rounded to multiples of 1/255."""
        if images.shape[-1] == self.canvas:
            return images
        return F.interpolate(images, size=(self.canvas, self.canvas), mode="bilinear", align_corners=False,
                             antialias=True)

    def frame(self) -> torch.Tensor:
        """The additive pattern in normalised units, ``theta`` itself ([3, canvas, canvas])."""
        return self.theta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_size(images)
        return (self.resize(images) - self.mean) / self.std + self.theta


class ScaledPrompt(ExpansivePrompt):
    """AutoVP's trainable resize: pad into the canvas, scale the canvas about its centre by a learned factor, add
    the grey frame outside the scaled image, normalise."""

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 init_scale: float = AUTOVP_INIT_SCALE):
        super().__init__(canvas, input_size, mean, std)
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))

    def placed(self, images: torch.Tensor) -> torch.Tensor:
        """The zero-padded image scaled by ``scale`` about the canvas centre ((canvas - 1) / 2 in pixels).

        kornia's ``scale`` warps with the pixel map ``p -> s (p - c) + c`` normalised by ``2 / (size - 1)``
        (``align_corners=True``): in grid coordinates that is ``u -> s u``, so each output pixel samples the input
        at ``u / s``; gradients reach ``scale`` through the bilinear weights.
        """
        x = self.pad(images)
        affine = torch.eye(2, 3, device=x.device, dtype=self.scale.dtype) / self.scale
        grid = F.affine_grid(affine.unsqueeze(0), [1, *x.shape[1:]], align_corners=True)
        grid = grid.to(x.dtype).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def inner_size(self) -> int:
        """The side of the frame's hole: ``min(int(in * scale), canvas)``, the product in float32 as the reference's."""
        return min(int(torch.tensor(float(self.input_size)) * self.scale.detach().float().cpu()), self.canvas)

    def scaled_mask(self) -> torch.Tensor:
        """1 outside the scaled image, 0 on ``[(canvas - h) // 2, (canvas + h) // 2)`` in both axes (InputPadding's
        ``redefind_mask``; the rounding can leave the hole one pixel off the image's edge, as there)."""
        h = self.inner_size()
        a, b = (self.canvas - h) // 2, (self.canvas + h) // 2
        mask = torch.ones_like(self.mask)
        mask[:, a:b, a:b] = 0
        return mask

    def frame(self) -> torch.Tensor:
        return torch.sigmoid(self.theta) * self.scaled_mask()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_size(images)
        return (self.placed(images) + self.frame() - self.mean) / self.std

    def constrain_(self) -> None:
        with torch.no_grad():
            self.scale.clamp_(*AUTOVP_SCALE_RANGE)

    def summary(self) -> dict:
        return {"scale": float(self.scale.detach()), "inner_size": self.inner_size(), "init_scale": AUTOVP_INIT_SCALE}


#: ``RunSpec.prompt`` names -> prompt classes (``config.PROMPTS`` lists the same names; None means "pad").
PROMPT_CLASSES: dict[str, type[Prompt]] = {"pad": ExpansivePrompt, "watermark": WatermarkPrompt,
                                           "autovp-scale": ScaledPrompt}


def create_prompt(name: str | None, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]
                  ) -> Prompt:
    """The prompt called ``name`` (None: "pad", the paper's); an unknown name lists the known ones."""
    name = name or "pad"
    if name not in PROMPT_CLASSES:
        raise UnknownNameError("prompt", name, PROMPT_CLASSES)
    return PROMPT_CLASSES[name](canvas, input_size, mean, std)
