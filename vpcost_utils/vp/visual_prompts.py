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
- ``SMMPrompt`` ("smm"): SMM's sample-specific multi-channel mask (``tmlr-group/SMM`` ``instance_model.py``
  ``InstancewiseVisualPrompt`` and ``AttributeNet``, ``instancewise_vp.py``, ``cfg.py`` ``get_config``). The image is
  resized to the canvas and normalised as for "watermark"; a small CNN (``MaskGenerator``) reads that normalised
  image and gives a 3-channel mask at 1/8 of the canvas, each of its values is spread over an 8 x 8 patch, and the
  shared pattern ``theta`` (zero at the start) times that mask is added: ``z + theta * mask(z)``. The mask has no
  activation and nothing is clamped, as there. The generator trains with its own learning rate and drop factor
  (``param_groups``); its BatchNorm statistics are part of the checkpointed state (``training_state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def param_groups(self, lr: float) -> list[dict]:
        """The optimizer's parameter groups at base learning rate ``lr``: one group of every parameter unless a
        reference trains parts of its prompt at other rates. A group may name its own ``gamma``, the factor of its
        learning-rate drops (the loop's 0.1 otherwise); the loop pops it before building the optimizer."""
        return [{"params": list(self.parameters())}]

    def training_state(self) -> dict[str, torch.Tensor]:
        """The live tensors training changes, by name, for a mid-run checkpoint: every parameter, and the buffers of
        sub-modules (SMM's BatchNorm running statistics). The prompt's own buffers (the normalisation, the frame's
        mask) are fixed by its construction and stay out, so the older prompts' checkpoints hold what they did."""
        state = dict(self.named_parameters())
        state.update((name, b) for name, b in self.named_buffers() if "." in name)
        return state


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


#: SMM's patch size (``instancewise_vp.py --patch_size``, default 8): each mask value covers an 8 x 8 patch.
SMM_PATCH_SIZE = 8
#: The learning rate of SMM's shared pattern (``cfg.py``: ``lr = 0.01``); a generator's rate is given relative to it.
SMM_PATTERN_LR = 0.01
#: The widths of the generator's hidden convolutions (``AttributeNet``: 8, 16, 32, 64, and 128 in the 6-layer one).
SMM_WIDTHS = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class SMMConfig:
    """One of SMM's backbone configurations (``cfg.py`` ``get_config``): the generator's depth (``attribute_layers``),
    its learning rate (``attr_lr``, beside the pattern's 0.01) and the factor of its drops (``attr_gamma``)."""

    layers: int
    generator_lr: float
    generator_gamma: float


#: ``get_config``: ViT-B/32 gets a 6-layer generator at lr 0.001 that never drops (``attr_gamma = 1``); every other
#: network (ResNet-18 / 50) a 5-layer one at the pattern's lr 0.01, dropped by 0.1 with it.
SMM_CONFIGS = {"cnn": SMMConfig(layers=5, generator_lr=0.01, generator_gamma=0.1),
               "vit": SMMConfig(layers=6, generator_lr=0.001, generator_gamma=1.0)}


class MaskGenerator(nn.Module):
    """SMM's mask CNN (``AttributeNet``): ``layers - 1`` blocks of 3x3 conv (stride 1, padding 1) + BatchNorm + ReLU,
    widths 8, 16, 32, 64 (, 128), the first ``log2(patch_size)`` blocks each followed by a 2x2 max-pool; then a 3x3
    conv to 3 channels with no norm and no activation. ``[B, 3, S, S]`` -> ``[B, 3, S / p, S / p]``."""

    def __init__(self, layers: int = 5, patch_size: int = SMM_PATCH_SIZE):
        super().__init__()
        pools = round(math.log2(patch_size)) if patch_size >= 1 else -1
        if layers not in (5, 6):
            raise ValueError(f"SMM's mask generator has 5 or 6 layers, got {layers}")
        if patch_size not in (1, 2, 4, 8, 16, 32) or pools > layers - 1:
            raise ValueError(f"SMM's {layers}-layer mask generator takes a patch size of 1, 2, 4, 8, 16"
                             f"{', 32' if layers == 6 else ''}, got {patch_size}")
        self.patch_size = patch_size
        widths = (3, *SMM_WIDTHS[:layers - 1])
        blocks = []
        for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
            block = [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
            blocks.append(nn.Sequential(*block, *([nn.MaxPool2d(2)] if i < pools else [])))
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x))


def spread_patches(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """SMM's patch-wise interpolation: each value of a ``[B, C, n, n]`` mask fills a ``patch_size`` square, so
    pixel ``(r, c)`` reads ``mask[..., r // p, c // p]`` (nearest-neighbour upsampling by an integer factor)."""
    return mask.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


class SMMPrompt(WatermarkPrompt):
    """SMM: resize to the canvas, normalise, add the shared pattern ``theta`` times a sample-specific 3-channel mask
    from ``MaskGenerator``, spread patch-wise.

    As the reference: the generator reads the normalised, resized image; the mask is the raw output of its last
    conv (no sigmoid, no clamp); ``theta`` is [3, canvas, canvas] in normalised units, initialised to zero, so the
    first step moves only ``theta`` (the generator's gradient is ``theta`` times the output's); the generator's
    BatchNorm uses batch statistics in training and its running ones in the mapping vote and the test pass; the
    pattern and the generator train with Adam at their own learning rates, both dropped at 50 % and 72 % of the
    epochs, the generator by its own factor (``config``, ``param_groups``).

    Deliberate differences (docs/reproduction.md, "Beyond ILM"):
    (1) The generator's initial weights (PyTorch's default initialisation, as there) are drawn from a generator
    seeded by the run's seed, apart from the global RNG, so runs of one seed on different backbones start from the
    same generator and the rest of the run draws exactly what it would with the other prompts; the reference draws
    them from the global RNG after building its backbone.
    (2) Our mapping vote always runs the prompt in eval mode. The reference's first ILM vote runs it in train mode
    (the module's default, before its first ``.train()``/``.eval()``), which cannot change that vote (``theta`` is
    zero) but moves the generator's BatchNorm running statistics by one pass over the training set.
    (3) The configuration follows the backbone's family (``SMM_CONFIGS``): "vit" (6 layers, generator lr 0.001, no
    drop) for transformers, which the reference tuned on ViT-B/32 at 384 px only and we apply to DeiT / Swin at
    their canvas; "cnn" (5 layers, lr 0.01, drop 0.1, tuned on ResNet-18 / 50 at 224) for the rest.
    (4) A learning rate other than the default scales both groups: the generator keeps its reference ratio to the
    pattern's.
    (5) A canvas that is not a multiple of the patch size is refused (the reference's reshape fails there too).
    (6) As for ``WatermarkPrompt``: no augmentation, the resize from our input size, this repository's epochs, batch
    sizes and arithmetic (SMM: 200 epochs, batch 256, fp16 AMP with a gradient scaler).
    Only the reference's defaults are built: patch size 8 and a 3-channel mask (``--attribute_channels 3``).
    """

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 config: SMMConfig = SMM_CONFIGS["cnn"], seed: int = 0, patch_size: int = SMM_PATCH_SIZE):
        if canvas % patch_size:
            raise ValueError(f"SMM's mask covers the canvas in whole {patch_size}-px patches, as the reference's: a "
                             f"{canvas}-px canvas is not divisible by {patch_size}; set RunSpec.canvas to a multiple "
                             f"of {patch_size} (e.g. {canvas // patch_size * patch_size})")
        super().__init__(canvas, input_size, mean, std)
        self.config, self.seed, self.patch_size = config, seed, patch_size
        with torch.random.fork_rng(devices=[]):  # the global RNG is left where it was
            torch.manual_seed(seed)
            self.generator = MaskGenerator(config.layers, patch_size)

    def mask(self, normalised: torch.Tensor) -> torch.Tensor:
        """The sample-specific mask ([B, 3, canvas, canvas]) of normalised canvas-sized images."""
        return spread_patches(self.generator(normalised), self.patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_size(images)
        z = (self.resize(images) - self.mean) / self.std
        return z + self.theta * self.mask(z)

    def param_groups(self, lr: float) -> list[dict]:
        """The pattern at ``lr``; the generator at ``lr`` times the reference's ratio, with its own drop factor (two
        groups of one Adam: the reference's two Adams step together on every batch, and Adam is per parameter)."""
        return [{"params": [self.theta]},
                {"params": list(self.generator.parameters()), "lr": lr * self.config.generator_lr / SMM_PATTERN_LR,
                 "gamma": self.config.generator_gamma}]

    def summary(self) -> dict:
        return {"generator_layers": self.config.layers, "patch_size": self.patch_size,
                "generator_lr_ratio": self.config.generator_lr / SMM_PATTERN_LR,
                "generator_gamma": self.config.generator_gamma, "generator_seed": self.seed}


#: ``RunSpec.prompt`` names -> prompt classes (``config.PROMPTS`` lists the same names; None means "pad").
PROMPT_CLASSES: dict[str, type[Prompt]] = {"pad": ExpansivePrompt, "watermark": WatermarkPrompt,
                                           "autovp-scale": ScaledPrompt, "smm": SMMPrompt}


def create_prompt(name: str | None, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                  *, seed: int = 0, family: str = "cnn") -> Prompt:
    """The prompt called ``name`` (None: "pad", the paper's); an unknown name lists the known ones.

    ``seed`` and ``family`` ("cnn" or "vit", ``SMM_CONFIGS``) reach SMM's generator only: its initial weights and
    its configuration."""
    name = name or "pad"
    if name not in PROMPT_CLASSES:
        raise UnknownNameError("prompt", name, PROMPT_CLASSES)
    if name == "smm":
        return SMMPrompt(canvas, input_size, mean, std, config=SMM_CONFIGS[family], seed=seed)
    return PROMPT_CLASSES[name](canvas, input_size, mean, std)
