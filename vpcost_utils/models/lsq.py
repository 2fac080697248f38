"""LSQ quantizers (Esser et al., ICLR 2020): the fake-quantization arithmetic and VVTQ's quantized layers.

One rule everywhere: ``q = round(clamp(x / step, qmin, qmax))`` and ``x_hat = q * step`` (plus an
offset for asymmetric activations). Rounding uses the straight-through estimator, so gradients
reach the input of a frozen quantized network: visual prompts are trained through it.

``LsqAct`` / ``LsqLinear`` / ``LsqConv2d`` reproduce the *state layout* of VVTQ's ``QuantAct`` /
``QuantLinear`` / ``QuantConv2d`` (Huang et al., TMLR 2024) so that its published checkpoints load
strictly: ``nbits`` (shape ``[1]``), ``alpha`` (one step size per bit width 2..8, used as
``alpha[nbits-2]``), ``beta`` (same, only for offset activations) and the ``init_state`` buffer.
With ``bits=None`` a layer is plain float and holds none of that state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_BITS, MAX_BITS = 2, 8  # the alpha vector holds one step size per bit width in this range
MIN_STEP = 1e-4  # VVTQ clamps step sizes to at least this before use
SAMPLE_SIZE = 1 << 16  # values an MSE step search looks at: plenty for one scalar, fast on CPU


def width_from_nbits(nbits: torch.Tensor) -> int:
    """The bit width VVTQ's forward reads from a stored ``nbits``: ``round(clamp(nbits, 2, 8))``.

    VVTQ stores ``nbits`` as a parameter and some of them train (Swin's patch-merging ``reduction``
    is built without ``mixpre=False``), so a stored value need not be an integer. Rounding is
    torch's (half to even), as in VVTQ's ``bit_pass``.
    """
    return int(torch.round(nbits.detach().float().reshape(-1)[0].clamp(MIN_BITS, MAX_BITS)).item())


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through estimator)."""
    return x + (x.round() - x).detach()


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer grid of a ``bits``-bit quantizer: ``[-2^(b-1), 2^(b-1)-1]`` or ``[0, 2^b-1]``."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def fake_quant(x: torch.Tensor, step: torch.Tensor, qmin: int, qmax: int,
               offset: torch.Tensor | None = None) -> torch.Tensor:
    """``round(clamp((x - offset) / step)) * step + offset`` with a straight-through round."""
    if offset is not None:
        x = x - offset
    x_hat = round_ste(torch.clamp(x / step, qmin, qmax)) * step
    return x_hat + offset if offset is not None else x_hat


def sample_values(x: torch.Tensor, k: int = SAMPLE_SIZE, seed: int = 0) -> torch.Tensor:
    """Up to ``k`` values of ``x`` drawn at random (seeded), plus its min and max, which set the grid."""
    flat = x.detach().float().reshape(-1)
    if flat.numel() <= k:
        return flat
    pick = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))[:k].to(flat.device)
    return torch.cat([flat[pick], flat.min()[None], flat.max()[None]])


@torch.no_grad()
def mse_step(x: torch.Tensor, qmin: int, qmax: int, *, per_channel: bool = False, grid: int = 100) -> torch.Tensor:
    """Step size minimising the quantization MSE of ``x``, by a grid search over clipping ranges.

    Candidates are ``r * max|x| / qmax`` for ``r`` in ``(0, 1]``; a grid is used rather than
    VVTQ's alternating least squares because it cannot diverge and needs no stopping rule.
    With ``per_channel`` the search runs per slice of dim 0 and the result has shape
    ``[C, 1, ...]`` (broadcastable against ``x``); otherwise it is a scalar tensor.
    """
    x = x.detach().float()
    rows = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    top = rows.clamp(min=0).amax(dim=1) if qmin == 0 else rows.abs().amax(dim=1)
    base = top / max(qmax, 1)
    best_err = torch.full_like(base, float("inf"))
    best = base.clone()
    for r in torch.linspace(1.0 / grid, 1.0, grid).tolist():
        step = (base * r).clamp(min=1e-12)[:, None]
        err = (torch.clamp((rows / step).round(), qmin, qmax) * step - rows).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, base * r, best)
    best = torch.where(best > 0, best, torch.ones_like(best))  # an all-zero tensor: any step is exact
    if per_channel:
        return best.reshape(-1, *([1] * (x.dim() - 1)))
    return best[0]


class _VvtqState(nn.Module):
    """Mixin holding VVTQ's per-layer quantizer state; ``bits=None`` means full precision."""

    bits: int | None

    def _init_state(self, bits: int | None, offset: bool = False) -> None:
        if bits is not None and not MIN_BITS <= bits <= MAX_BITS:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS} or None, got {bits}")
        self.bits = bits
        if bits is None:
            return
        # nbits is configuration, not learned here: a buffer, but under VVTQ's key name
        self.register_buffer("nbits", torch.tensor([float(bits)]))
        self.alpha = nn.Parameter(torch.ones(MAX_BITS - MIN_BITS + 1))
        if offset:
            self.beta = nn.Parameter(torch.zeros(MAX_BITS - MIN_BITS + 1))
        self.register_buffer("init_state", torch.zeros(1))

    def step(self) -> torch.Tensor:
        return self.alpha[self.bits - MIN_BITS].clamp(min=MIN_STEP)

    def stored_bits(self) -> int | None:
        """Bit width stored in the state (``nbits``) as VVTQ's forward reads it; a loader compares it with ``bits``."""
        return None if self.bits is None else width_from_nbits(self.nbits)

    def adopt_stored_bits(self) -> int | None:
        """Run at the stored width from now on (VVTQ's behaviour for every layer); returns it."""
        if self.bits is not None:
            self.bits = self.stored_bits()
        return self.bits

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class LsqAct(_VvtqState):
    """Activation quantizer; ``used=False`` marks one that VVTQ creates but never calls."""

    def __init__(self, bits: int | None, *, signed: bool = True, offset: bool = False, used: bool = True):
        super().__init__()
        self.signed, self.offset, self.used = signed, offset, used
        self._init_state(bits, offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x
        qmin, qmax = qrange(self.bits, self.signed)
        beta = self.beta[self.bits - MIN_BITS] if self.offset else None
        return fake_quant(x, self.step(), qmin, qmax, beta)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Set every bit width's step (and offset) by MSE on sample activations; mark initialised."""
        if self.bits is None:
            return
        x = sample_values(x)
        for b in range(MIN_BITS, MAX_BITS + 1):
            beta = x.min() if self.offset else torch.zeros((), device=x.device)
            qmin, qmax = qrange(b, self.signed)
            self.alpha[b - MIN_BITS] = mse_step(x - beta, qmin, qmax)
            if self.offset:
                self.beta[b - MIN_BITS] = beta
        self.init_state.fill_(1)


class _LsqWeight(_VvtqState):
    """Shared weight fake quantization of ``LsqLinear`` and ``LsqConv2d`` (signed, per tensor)."""

    weight: torch.Tensor

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: at most ``2^bits`` distinct values."""
        if self.bits is None:
            return self.weight
        return fake_quant(self.weight, self.step(), *qrange(self.bits, True))

    @torch.no_grad()
    def init_steps(self) -> None:
        """Set every bit width's step by MSE on the weight (VVTQ's ``initialize_scale``)."""
        if self.bits is None:
            return
        for b in range(MIN_BITS, MAX_BITS + 1):
            self.alpha[b - MIN_BITS] = mse_step(self.weight, *qrange(b, True))
        self.init_state.fill_(1)


class LsqLinear(nn.Linear, _LsqWeight):
    """``nn.Linear`` whose weight is LSQ-quantized to ``bits`` (VVTQ ``QuantLinear`` layout)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits: int | None):
        super().__init__(in_features, out_features, bias=bias)
        self._init_state(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{nn.Linear.extra_repr(self)}, bits={self.bits}"


class LsqConv2d(nn.Conv2d, _LsqWeight):
    """``nn.Conv2d`` whose weight is LSQ-quantized to ``bits`` (VVTQ ``QuantConv2d``, layer-wise)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *, bits: int | None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self._init_state(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{nn.Conv2d.extra_repr(self)}, bits={self.bits}"


def vvtq_quantizers(model: nn.Module) -> dict[str, _VvtqState]:
    """Every quantizing layer of ``model`` (float ones, ``bits=None``, left out), by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, _VvtqState) and m.bits is not None}


@torch.no_grad()
def init_vvtq_steps(model: nn.Module, batch: torch.Tensor) -> None:
    """VVTQ-style initialisation: weight steps by MSE, activation steps by MSE on one float pass.

    Used to build meaningful test models and as the starting point for QAT; published
    checkpoints carry trained steps and do not need it.
    """
    quantizers = vvtq_quantizers(model)
    acts = {n: m for n, m in quantizers.items() if isinstance(m, LsqAct)}
    seen: dict[str, torch.Tensor] = {}
    for m in quantizers.values():
        if isinstance(m, _LsqWeight):
            m.init_steps()
    saved = {n: m.bits for n, m in acts.items()}
    hooks = [m.register_forward_hook(lambda _m, inp, _o, n=n: seen.setdefault(n, inp[0].detach()))
             for n, m in acts.items()]
    try:
        for m in acts.values():
            m.bits = None  # pass activations through unchanged while their inputs are recorded
        was_training = model.training
        model.eval()(batch)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
        for n, m in acts.items():
            m.bits = saved[n]
    for n, m in acts.items():
        if n in seen:
            m.init_from(seen[n])
