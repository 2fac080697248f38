"""Post-training fake quantization of any CNN or ViT: the labelled substitute for quantized checkpoints.

``fake_quantize(model, bits, calib)`` returns a quantized *copy*: every ``nn.Linear`` and
``nn.Conv2d`` (exact types; subclasses such as attention's internal projections keep their own
code and stay float) gets LSQ-style fake quantization of its weight and of its input activation.
Choices, stated once:

* weights are signed and quantized **per tensor** by default, as LSQ and VVTQ do, so a
  quantized tensor holds at most ``2^bits`` distinct values; ``per_channel=True`` gives each
  output channel its own step (better accuracy, ``2^bits`` values per channel);
* an activation is quantized unsigned (``[0, 2^b-1]``) when it was never negative on the
  calibration data (after a ReLU) and signed otherwise, one step per tensor;
* the first and last layers *in execution order* (as observed on the calibration batch) use
  ``first_last_bits`` (8 by default), as in LSQ, VVTQ and most QAT work;
* only module inputs are quantized, so on timm ViTs a fused ``qkv`` linear gets one weight step and
  one input step for q, k and v together, the attention matmul operands (q, k, v, softmax output)
  stay float, and Swin's patch merging is an inner layer at ``bits`` (VVTQ: split q/k/v, quantized
  matmul operands, 8-bit patch merging);
* every step size is the MSE-optimal one over a grid of clipping ranges (``lsq.mse_step``): for
  weights on the weight itself, for activations on a sample of the float network's inputs to that
  layer over the calibration batches (all layers are calibrated on float activations, not
  sequentially; this is plain PTQ, with no retraining, so it is far from QAT at <= 3 bits).

Steps are ``nn.Parameter``s, so the copy can be fine-tuned (QAT) by the straight-through rounding.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import IMAGENET_MEAN, IMAGENET_STD
from .lsq import SAMPLE_SIZE, fake_quant, mse_step, qrange


class Quantizer(nn.Module):
    """Fake quantizer with a learnable step (a scalar, or ``[C, 1, ...]`` per output channel)."""

    def __init__(self, bits: int, signed: bool, step: torch.Tensor):
        super().__init__()
        self.bits, self.signed = bits, signed
        self.step = nn.Parameter(step.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, self.step.clamp(min=1e-8), *qrange(self.bits, self.signed))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}, per_channel={self.step.dim() > 0}"


class FakeQuantLinear(nn.Linear):
    """A ``nn.Linear`` turned quantized in place by ``fake_quantize`` (``input_quant``, ``weight_quant``)."""

    input_quant: Quantizer
    weight_quant: Quantizer

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), self.quantized_weight(), self.bias)


class FakeQuantConv2d(nn.Conv2d):
    """A ``nn.Conv2d`` turned quantized in place by ``fake_quantize``."""

    input_quant: Quantizer
    weight_quant: Quantizer

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.input_quant(x), self.quantized_weight(), self.bias)


_SWAP: dict[type, type] = {nn.Linear: FakeQuantLinear, nn.Conv2d: FakeQuantConv2d}


def _register_timm_same_conv() -> None:
    """timm's TF-ported models (``tf_efficientnet_lite*``) use ``Conv2dSame``, a ``Conv2d`` whose forward pads
    "SAME" at run time; its quantized twin keeps that padding. Registered only when timm imports."""
    try:
        from timm.layers import Conv2dSame, conv2d_same
    except ImportError:
        return

    class FakeQuantConv2dSame(Conv2dSame):
        input_quant: Quantizer
        weight_quant: Quantizer

        def quantized_weight(self) -> torch.Tensor:
            return self.weight_quant(self.weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Quantizing before the zero padding is exact: 0 is on every quantization grid here.
            return conv2d_same(self.input_quant(x), self.quantized_weight(), self.bias, self.stride, self.padding,
                               self.dilation, self.groups)

    # Published at module level so cached quantized models (torch.save of the module) unpickle.
    FakeQuantConv2dSame.__qualname__ = FakeQuantConv2dSame.__name__
    globals()[FakeQuantConv2dSame.__name__] = FakeQuantConv2dSame
    _SWAP[Conv2dSame] = FakeQuantConv2dSame


_register_timm_same_conv()


class _InputSampler:
    """Forward pre-hook that records a layer's first call and a random sample of its inputs."""

    def __init__(self, order: list[str], name: str, generator: torch.Generator):
        self.order, self.name, self.generator = order, name, generator
        self.samples: list[torch.Tensor] = []

    def __call__(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if self.name not in self.order:
            self.order.append(self.name)
        x = args[0].detach().float().reshape(-1)
        pick = torch.randint(0, x.numel(), (min(x.numel(), SAMPLE_SIZE // 4),), generator=self.generator)
        self.samples.append(torch.cat([x[pick.to(x.device)], x.min()[None], x.max()[None]]).cpu())
        if sum(s.numel() for s in self.samples) > 2 * SAMPLE_SIZE:  # keep memory flat over many batches
            self.samples = [self.sample()]

    def sample(self) -> torch.Tensor:
        x = torch.cat(self.samples)
        if x.numel() <= SAMPLE_SIZE:
            return x
        keep = torch.randperm(x.numel(), generator=self.generator)[:SAMPLE_SIZE]
        return torch.cat([x[keep], x.min()[None], x.max()[None]])  # extremes stay: they set the grid


def _batches(calib: torch.Tensor | Iterable) -> list[torch.Tensor]:
    if isinstance(calib, torch.Tensor):
        return [calib]
    return [b[0] if isinstance(b, (tuple, list)) else b for b in calib]  # DataLoader-style (x, y) too


def _skipped(name: str, skip: Iterable[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in (skip or ()))


@torch.no_grad()
def _observe(model: nn.Module, targets: dict[str, nn.Module], batches: list[torch.Tensor],
             seed: int) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Run the float model on the calibration batches: execution order and input samples per layer."""
    order: list[str] = []
    generator = torch.Generator().manual_seed(seed)
    samplers = {n: _InputSampler(order, n, generator) for n in targets}
    hooks = [m.register_forward_pre_hook(samplers[n]) for n, m in targets.items()]
    device = next(model.parameters()).device
    try:
        for batch in batches:
            model(batch.to(device))
    finally:
        for h in hooks:
            h.remove()
    return order, {n: samplers[n].sample() for n in order}


def fake_quantize(module: nn.Module, bits: int, calib: torch.Tensor | Iterable[torch.Tensor], *,
                  first_last_bits: int = 8, skip: Iterable[str] | None = None, per_channel: bool = False,
                  seed: int = 0, act_bits: int | None = None) -> nn.Module:
    """A copy of ``module`` with W``bits``A``bits`` LSQ fake quantization, steps set by MSE on ``calib``.

    Args:
        module: any network built from ``nn.Conv2d`` / ``nn.Linear``; it is not modified.
        bits: weight and activation bit width (2..8) of every quantized layer but the first and last.
        calib: one input batch or an iterable of batches (or ``(x, y)`` pairs) in the model's input format.
        first_last_bits: bit width of the first and last quantized layer in execution order.
        skip: shell-style patterns of module names to leave in float (``"head"``, ``"blocks.0.*"``).
        per_channel: one weight step per output channel instead of one per tensor.
        seed: seed of the activation sampling, so the result is a pure function of the inputs.
        act_bits: activation bit width of the inner layers when it differs from the weights' (W4A8: ``bits=4,
            act_bits=8``); default ``bits``.

    Returns:
        The quantized copy, in the same train/eval mode as ``module``. Layers never called on the
        calibration data stay float.
    """
    act_bits = bits if act_bits is None else act_bits
    if not all(2 <= b <= 8 for b in (bits, first_last_bits, act_bits)):
        raise ValueError(f"bit widths must be in 2..8, got bits={bits}, act_bits={act_bits}, "
                         f"first_last_bits={first_last_bits}")
    model = copy.deepcopy(module)
    was_training = model.training
    model.eval()  # BatchNorm must use its running statistics while activations are observed
    targets = {n: m for n, m in model.named_modules() if type(m) in _SWAP and not _skipped(n, skip)}
    batches = _batches(calib)
    if not batches:
        raise ValueError("fake_quantize needs at least one calibration batch")
    order, samples = _observe(model, targets, batches, seed)
    edges = {order[0], order[-1]} if order else set()
    for name in order:
        layer, edge = targets[name], name in edges
        b, a = (first_last_bits, first_last_bits) if edge else (bits, act_bits)
        signed = bool(samples[name].min() < 0)
        layer.__class__ = _SWAP[type(layer)]  # same parameters and hyper-parameters, quantized forward
        layer.input_quant = Quantizer(a, signed, mse_step(samples[name], *qrange(a, signed)))
        weight_step = mse_step(layer.weight, *qrange(b, True), per_channel=per_channel)
        layer.weight_quant = Quantizer(b, True, weight_step).to(layer.weight.device)
        layer.input_quant.to(layer.weight.device)
    return model.train(was_training)


@torch.no_grad()
def count_distinct_weights(module: nn.Module) -> dict[str, int]:
    """Distinct values in the weight each ``Linear`` / ``Conv2d`` actually uses (quantized or not), by name."""
    counts = {}
    for name, m in module.named_modules():
        if hasattr(m, "quantized_weight"):
            counts[name] = int(torch.unique(m.quantized_weight()).numel())
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            counts[name] = int(torch.unique(m.weight).numel())
    return counts


def quantized_bits(module: nn.Module) -> dict[str, int]:
    """Bit width of every layer ``fake_quantize`` quantized, by module name."""
    return {n: m.weight_quant.bits for n, m in module.named_modules() if type(m) in _SWAP.values()}


def synthetic_calibration(size: int, n: int = 32, batch_size: int = 8, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random colour images, ImageNet-normalised: calibration input when no real images exist.

    Low-frequency noise has natural-image-like local correlation, which matters more for
    activation ranges than content; it is still a weak proxy, and records say it was used.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    images = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    images = (images + 0.05 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return list(((images - mean) / std).split(batch_size))
