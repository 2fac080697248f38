"""VVTQ quantized DeiT-T and Swin-T (Huang et al., "Quantization Variation", TMLR 2024), and their entries.

Our own implementation of the networks behind VVTQ's published W4A4/W3A3/W2A2 checkpoints
(``HuangOwen/Quantization-Variation``, MIT), with the same state-dict names and shapes so those
files load strictly: split ``proj_q/k/v`` linears, LSQ activation quantizers around every matmul
(``quant_input``, ``quant_q/k/v``, unsigned ``quant_attn``, ``quant_output``; in the MLP ``quant1``
and the unsigned, offset ``quant2``), an 8-bit patch embedding, 8-bit head (``quant`` + ``head``)
and, in Swin, patch merging built at 8 bits. As in VVTQ, the layers outside the blocks run at the
width their file stores (``round(clamp(nbits, 2, 8))``): Swin's patch-merging ``nbits`` is trainable
in VVTQ and may have drifted below 7.5. Two VVTQ quirks are kept on purpose: Swin's
``patch_embed.quant`` exists but is never applied, and ``attn_mask`` / ``relative_position_index``
are persistent buffers.

Registered names: ``{deit_tiny,swin_tiny}/w{4,3,2}a{4,3,2}`` (VVTQ files), ``…/fp32`` (the same
network with every quantizer off, holding the official float weights that the paper's code asks
for, taken from timm and split into q/k/v) and ``…/timm`` (plain timm models). VVTQ's own float
checkpoints (73.75 / 81.0) are not used: their file names are unpublished (a SharePoint folder)
and their training script pickles an ``argparse.Namespace``, which a safe ``weights_only`` load
refuses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, MissingFileError
from . import _checkpoints
from ._checkpoints import load_file, offline, resolve_checkpoint
from ._registry import ModelEntry, SourceModel, register
from .lsq import LsqAct, LsqConv2d, LsqLinear, vvtq_quantizers

__all__ = ["ARCH_CONFIGS", "DeitConfig", "QuantDeiT", "QuantSwin", "SwinConfig", "build_vvtq", "timm_to_vvtq"]

EDGE_BITS = 8  # VVTQ builds the patch embedding, Swin's patch merging and the head at 8 bits


# ----------------------------------------------------------------------------------------- shared parts
class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, bits: int | None):
        super().__init__()
        self.quant1 = LsqAct(bits)
        self.fc1 = LsqLinear(dim, hidden, bits=bits)
        self.act = nn.GELU()
        self.quant2 = LsqAct(bits, signed=False, offset=True)  # GELU output: asymmetric, unsigned
        self.fc2 = LsqLinear(hidden, dim, bits=bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.quant2(self.act(self.fc1(self.quant1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention with separate Q/K/V projections, each quantized on its own."""

    def __init__(self, dim: int, num_heads: int, bits: int | None, window: int | None = None):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        if window is not None:  # Swin: learned bias per relative offset inside a window
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
            self.register_buffer("relative_position_index", _relative_position_index(window))
        self.quant_input = LsqAct(bits)
        self.proj_q = LsqLinear(dim, dim, bits=bits)
        self.proj_k = LsqLinear(dim, dim, bits=bits)
        self.proj_v = LsqLinear(dim, dim, bits=bits)
        self.quant_q, self.quant_k, self.quant_v = LsqAct(bits), LsqAct(bits), LsqAct(bits)
        self.quant_attn = LsqAct(bits, signed=False)
        self.quant_output = LsqAct(bits)
        self.proj = LsqLinear(dim, dim, bits=bits)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        x = self.quant_input(x)
        q = self.quant_q(self._heads(self.proj_q(x)))
        k = self.quant_k(self._heads(self.proj_k(x)))
        v = self.quant_v(self._heads(self.proj_v(x)))
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if hasattr(self, "relative_position_index"):
            bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
            attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:  # one 0/-100 mask per window position, shared across the batch
            nw = mask.shape[0]
            attn = (attn.reshape(b // nw, nw, self.num_heads, n, n) + mask[None, :, None]).reshape(b, -1, n, n)
        attn = self.quant_attn(attn.softmax(dim=-1))
        x = self.quant_output(attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


# -------------------------------------------------------------------------------------------------- DeiT
@dataclass(frozen=True)
class DeitConfig:
    """DeiT architecture; the defaults are DeiT-Tiny (``deit_tiny_patch16_224``)."""

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    eps: float = 1e-6  # LayerNorm epsilon of DeiT


class DeitBlock(nn.Module):
    def __init__(self, cfg: DeitConfig, bits: int | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, bits)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio), bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Patchify by a strided convolution; ``apply_quant=False`` reproduces Swin's unused quantizer."""

    def __init__(self, patch: int, dim: int, bits: int | None, *, norm_eps: float | None = None,
                 apply_quant: bool = True):
        super().__init__()
        self.quant = LsqAct(bits, used=apply_quant)
        self.proj = LsqConv2d(3, dim, patch, stride=patch, bits=bits)
        if norm_eps is not None:
            self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant.used:
            x = self.quant(x)
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm(x) if hasattr(self, "norm") else x


class QuantDeiT(nn.Module):
    """DeiT with VVTQ's quantizers; ``bits=None`` gives the float network (no quantizer state)."""

    def __init__(self, cfg: DeitConfig = DeitConfig(), bits: int | None = None):
        super().__init__()
        self.cfg, self.bits = cfg, bits
        edge = None if bits is None else EDGE_BITS
        num_patches = (cfg.img_size // cfg.patch_size) ** 2
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim, edge)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, cfg.embed_dim))
        self.blocks = nn.ModuleList(DeitBlock(cfg, bits) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)
        self.quant = LsqAct(edge)
        self.head = LsqLinear(cfg.embed_dim, cfg.num_classes, bits=edge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.quant(self.norm(x)[:, 0]))


# -------------------------------------------------------------------------------------------------- Swin
@dataclass(frozen=True)
class SwinConfig:
    """Swin architecture; the defaults are Swin-Tiny (``swin_tiny_patch4_window7_224``)."""

    img_size: int = 224
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    eps: float = 1e-5


def _relative_position_index(window: int) -> torch.Tensor:
    """Index into the ``(2w-1)^2`` bias table for every pair of positions in a ``w x w`` window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * H/w * W/w, w*w, C]``, windows in row-major order."""
    b, h, wd, c = x.shape
    return x.reshape(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def _unwindows(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    b = x.shape[0] // ((h // w) * (wd // w))
    return x.reshape(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, -1)


def _shift_mask(res: int, window: int, shift: int) -> torch.Tensor:
    """0 / -100 mask keeping shifted-window attention inside each of the 9 rolled regions."""
    regions = torch.zeros(1, res, res, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in bounds for ws in bounds):
        regions[:, hs, ws, :] = i
    labels = _windows(regions, window).squeeze(-1)
    diff = labels[:, None, :] - labels[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, res: int, heads: int, window: int, shift: int, cfg: SwinConfig, bits: int | None):
        super().__init__()
        if res <= window:  # one window covers the map: no partition and no shift (as Swin does)
            window, shift = res, 0
        self.res, self.window, self.shift = res, window, shift
        self.norm1 = nn.LayerNorm(dim, eps=cfg.eps)
        self.attn = Attention(dim, heads, bits, window=window)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), bits)
        self.register_buffer("attn_mask", _shift_mask(res, window, shift) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        h = self.norm1(x).reshape(b, self.res, self.res, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), dims=(1, 2))
        h = _unwindows(self.attn(_windows(h, self.window), self.attn_mask), self.window, self.res, self.res)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(b, -1, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, res: int, dim: int, cfg: SwinConfig, bits: int | None):
        super().__init__()
        self.res = res
        self.reduction = LsqLinear(4 * dim, 2 * dim, bias=False, bits=bits)
        self.norm = nn.LayerNorm(4 * dim, eps=cfg.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.reshape(b, self.res, self.res, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, i: int, cfg: SwinConfig, bits: int | None, edge: int | None):
        super().__init__()
        dim, res = cfg.embed_dim * 2**i, cfg.img_size // cfg.patch_size // 2**i
        self.blocks = nn.ModuleList(
            SwinBlock(dim, res, cfg.num_heads[i], cfg.window_size, (j % 2) * (cfg.window_size // 2), cfg, bits)
            for j in range(cfg.depths[i]))
        self.downsample = PatchMerging(res, dim, cfg, edge) if i < len(cfg.depths) - 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class QuantSwin(nn.Module):
    """Swin Transformer with VVTQ's quantizers, in the original (Microsoft) layout."""

    def __init__(self, cfg: SwinConfig = SwinConfig(), bits: int | None = None):
        super().__init__()
        self.cfg, self.bits = cfg, bits
        edge = None if bits is None else EDGE_BITS
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim, edge, norm_eps=cfg.eps, apply_quant=False)
        self.layers = nn.ModuleList(SwinStage(i, cfg, bits, edge) for i in range(len(cfg.depths)))
        num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        self.norm = nn.LayerNorm(num_features, eps=cfg.eps)
        self.quant = LsqAct(edge)
        self.head = LsqLinear(num_features, cfg.num_classes, bits=edge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.quant(self.norm(x).mean(dim=1)))


# ------------------------------------------------------------------------------------------------ building
ARCH_CONFIGS: dict[str, DeitConfig | SwinConfig] = {"deit_tiny": DeitConfig(), "swin_tiny": SwinConfig()}
"""The size each entry builds; tests swap in tiny configs (the code path stays the same)."""

TIMM_NAMES = {"deit_tiny": "deit_tiny_patch16_224.fb_in1k", "swin_tiny": "swin_tiny_patch4_window7_224.ms_in1k"}
VVTQ_FILE_STEMS = {"deit_tiny": "deit_t", "swin_tiny": "swin_t"}


def build_vvtq(arch: str, bits: int | None, cfg: DeitConfig | SwinConfig | None = None) -> QuantDeiT | QuantSwin:
    """Untrained VVTQ network for ``arch`` (``deit_tiny`` / ``swin_tiny``) at ``bits`` (None = float)."""
    cfg = cfg or ARCH_CONFIGS[arch]
    return QuantDeiT(cfg, bits) if isinstance(cfg, DeitConfig) else QuantSwin(cfg, bits)


def timm_config_kwargs(cfg: DeitConfig | SwinConfig) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments that build the timm twin of ``cfg``."""
    common = {"img_size": cfg.img_size, "patch_size": cfg.patch_size, "embed_dim": cfg.embed_dim,
              "mlp_ratio": cfg.mlp_ratio, "num_classes": cfg.num_classes}
    if isinstance(cfg, DeitConfig):
        return dict(common, depth=cfg.depth, num_heads=cfg.num_heads)
    return dict(common, depths=cfg.depths, num_heads=cfg.num_heads, window_size=cfg.window_size)


def timm_to_vvtq(state: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a timm DeiT/Swin state dict into VVTQ's layout of ``target`` (a float ``build_vvtq``).

    Splits fused ``qkv`` into ``proj_q/k/v`` thirds. For Swin it also moves timm's patch merging
    (``layers.{i}.downsample``, at the start of stage i) back to the end of stage i-1, renames
    ``head.fc`` to ``head`` and takes the index / mask buffers, which timm does not save, from ``target``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".attn.qkv." in key:
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[key.replace(".attn.qkv.", f".attn.proj_{name}.")] = part
            continue
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        out[".".join(parts).replace("head.fc.", "head.")] = value
    for key, value in target.state_dict().items():
        if key.endswith(("relative_position_index", "attn_mask")):
            out.setdefault(key, value)
    return out


# ------------------------------------------------------------------------------------------------- loading
def strict_load(model: nn.Module, state: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """``load_state_dict(strict=True)``, but every mismatch is listed in one ``CheckpointError``."""
    _checkpoints.strict_load(model, state, f"{what} does not fit the network", fix)


def _is_edge(name: str) -> bool:
    """Quantizers outside the transformer blocks: patch embedding, Swin's patch merging, head and its input."""
    return ".blocks." not in f".{name}."


def check_bits(model: nn.Module, bits: int, what: str, fix: str) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Take the edge layers' widths from their stored ``nbits``; assert every block layer stores ``bits``.

    VVTQ's forward reads every layer's width from its stored ``nbits``. Block layers are built with
    ``mixpre=False`` (VVTQ's ``train_VVTQ.py`` default), so their ``nbits`` never moves and another
    value means another model. Swin's patch-merging ``reduction`` is built without it, so its
    ``nbits`` trains and a published file may hold e.g. 7.4, which VVTQ runs at 7 bits: every edge
    layer therefore adopts its stored width, as VVTQ does. Also asserts every used quantizer was
    initialised (trained). Returns the measured widths as counts, ``{"weight": {"4": 72, "8": 3},
    "act": {...}}``, and the width each used edge layer runs at, by layer name.
    """
    quantizers = vvtq_quantizers(model)
    edge_bits = {name: q.adopt_stored_bits() for name, q in quantizers.items()
                 if _is_edge(name) and getattr(q, "used", True)}
    wrong, uninitialised = [], []
    summary: dict[str, Counter[str]] = {"weight": Counter(), "act": Counter()}
    for name, q in quantizers.items():
        stored = q.stored_bits()
        if not _is_edge(name) and stored != q.bits:
            wrong.append(f"{name} stores {stored}")
        if getattr(q, "used", True) and float(q.init_state.item()) != 1.0:
            uninitialised.append(name)
        summary["act" if isinstance(q, LsqAct) else "weight"][str(stored)] += 1
    if wrong:
        raise CheckpointError(f"{what} is not a {bits}-bit model: {len(wrong)} layers differ from the configured "
                              f"width ({', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}). {fix}")
    if uninitialised:
        raise CheckpointError(f"{what} has quantizers whose step sizes were never initialised "
                              f"({', '.join(uninitialised[:5])}); it is not a trained VVTQ checkpoint. {fix}")
    return {kind: dict(sorted(c.items())) for kind, c in summary.items()}, edge_bits


def vvtq_state_dict(ckpt: dict[str, Any], what: str) -> dict[str, torch.Tensor]:
    """The model weights of a VVTQ training checkpoint: ``ckpt['state_dict']`` minus DDP's ``module.``."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        keys = list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{what} has no 'state_dict' entry (found {keys}); VVTQ checkpoints are "
                              "what train_VVTQ.py saves: {'epoch', 'state_dict', 'best_acc1', ...}")
    return {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}


def load_vvtq(entry: ModelEntry) -> SourceModel:
    """Build ``entry``'s VVTQ network, load its published checkpoint strictly, check and record every bit width."""
    path = resolve_checkpoint(entry)
    ckpt = load_file(path)
    fix = f"Fetch {entry.filename} again from {entry.source}"
    model = build_vvtq(entry.arch, entry.bits)
    strict_load(model, vvtq_state_dict(ckpt, str(path)), str(path), fix)
    summary, edge_bits = check_bits(model, entry.bits, str(path), fix)
    best = ckpt.get("best_acc1")
    provenance = {"source": "vvtq", "file": str(path), "bits": entry.bits, "measured_bits": summary,
                  "edge_bits": edge_bits,
                  "epoch": ckpt.get("epoch"), "best_acc1": float(best) if best is not None else None}
    return SourceModel(entry.name, model, canvas_size=model.cfg.img_size, provenance=provenance)


def timm_float(arch: str) -> nn.Module:
    """timm's float model for ``arch`` with its pretrained ImageNet weights (HF hub cache, ``HF_HOME``)."""
    import timm
    from huggingface_hub import constants, hf_hub_download

    name = TIMM_NAMES[arch]
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    try:
        file = hf_hub_download(repo, "model.safetensors", local_files_only=offline())
    except Exception as exc:  # offline, no network, moved repo: all end in the same advice
        raise MissingFileError(f"timm weights {name}", f"{repo}/model.safetensors", f"https://huggingface.co/{repo}",
                               f"{constants.HF_HUB_CACHE} (the Hugging Face cache under HF_HOME)") from exc
    # download and load are separate steps so that a load error is never reported as a missing file
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": file})


def load_timm(entry: ModelEntry) -> SourceModel:
    """The plain timm reference model."""
    model = timm_float(entry.arch)
    provenance = {"source": "timm", "weights": TIMM_NAMES[entry.arch]}
    return SourceModel(entry.name, model, canvas_size=ARCH_CONFIGS[entry.arch].img_size, provenance=provenance)


def load_fp32(entry: ModelEntry) -> SourceModel:
    """VVTQ's float network holding timm's weights, q/k/v split: same code as the quantized entries."""
    model = build_vvtq(entry.arch, None)
    state = timm_to_vvtq(timm_float(entry.arch).state_dict(), model)
    strict_load(model, state, f"timm weights {TIMM_NAMES[entry.arch]}", "Report this as a bug in vpcost.")
    provenance = {"source": "timm", "weights": TIMM_NAMES[entry.arch], "layout": "vvtq float (qkv split)"}
    return SourceModel(entry.name, model, canvas_size=model.cfg.img_size, provenance=provenance)


def ptq_note(arch: str, bits: int) -> str:
    """What ``ptq_substitute`` quantizes, and where that differs from VVTQ's placement, in one line.

    ``quantize.fake_quantize`` swaps every plain ``nn.Linear`` / ``nn.Conv2d`` of the timm model, so the
    placement follows timm's modules: fused ``qkv`` (one step for q, k and v), no quantizer on the
    attention matmul operands, and Swin's patch merging is an ordinary inner layer.
    """
    merging = f"; Swin patch merging at W{bits}A{bits} (VVTQ: 8 bits)" if arch == "swin_tiny" else ""
    return (f"PTQ substitute: LSQ fake quantization of timm {TIMM_NAMES[arch]}, per-tensor steps set by MSE on "
            f"synthetic images, no retraining. W{bits}A{bits} (weight and input) on every block's fused qkv (one "
            f"step shared by q, k and v), proj, fc1 and fc2{merging}; patch embedding and head (weight and "
            "input) at 8 bits; q, k, v and the softmax output stay float (VVTQ quantizes each at "
            f"{bits} bits); activations signed unless never negative in calibration, no offsets. Not comparable "
            "to VVTQ's QAT at <=3 bits")


def ptq_substitute(entry: ModelEntry) -> SourceModel:
    """Post-training LSQ fake quantization of the timm float model at ``entry.bits``; ``ptq_note`` says where."""
    from .quantize import count_distinct_weights, fake_quantize, quantized_bits, synthetic_calibration

    size = ARCH_CONFIGS[entry.arch].img_size
    model = fake_quantize(timm_float(entry.arch), entry.bits, synthetic_calibration(size))
    distinct = count_distinct_weights(model)
    provenance = {"source": "timm+ptq", "weights": TIMM_NAMES[entry.arch], "bits": entry.bits,
                  "calibration": "synthetic smooth-noise images (no ImageNet on this machine)",
                  "max_distinct_weights": max(distinct.values()),
                  "layers_per_bits": {str(b): n for b, n in sorted(Counter(quantized_bits(model).values()).items())}}
    return SourceModel(entry.name, model, canvas_size=size, provenance=provenance)


# -------------------------------------------------------------------------------------------- registration
_SHAREPOINT = "https://hkustconnect-my.sharepoint.com/:f:/g/personal/xhuangbs_connect_ust_hk/"
_FOLDERS = {  # README "Models" table of HuangOwen/Quantization-Variation (folder shares, not files)
    ("deit_tiny", 4): "EmsOhPWW83tIqeB8_bHoJwkBHQIlgFyDs45WvQtBdZ80iA",
    ("deit_tiny", 3): "El-PoCPkBLxJoIt1q5QAZPsBR6r03LtD6GT0E_JsEOa8UQ",
    ("deit_tiny", 2): "EsFXkkBx5o5MmLmnOOBF5kgBrMvski1KK-tHhXG9pZdZOQ",
    ("swin_tiny", 4): "EkKkcCGrejJHl8ENdydFk_EBashaw8UHbO9UhLcWSL9img",
    ("swin_tiny", 3): "EtfaRgHlLuxNss6w42yHf2kBTkIyskg9rsRlPvBlOsS1Pg",
    ("swin_tiny", 2): "Eud-4deIkJ9Dvrls0GWES1IBhl9Ej2bBfUy-7wPA3cf1xQ",
}
_VVTQ_TOP1 = {("deit_tiny", 4): 74.71, ("deit_tiny", 3): 71.22, ("deit_tiny", 2): 59.73,
              ("swin_tiny", 4): 82.42, ("swin_tiny", 3): 81.37, ("swin_tiny", 2): 77.66}
_FLOAT_TOP1 = {"deit_tiny": 72.2, "swin_tiny": 81.2}  # official DeiT-T / Swin-T weights (timm's fb_in1k / ms_in1k)
_TIMM_LICENSE = {"deit_tiny": "Apache-2.0", "swin_tiny": "MIT"}


_FAKE = "vpcost_utils.models.vvtq_fakes:write_fake"  # random weights in the published layout (rehearsal)

def _register_family(arch: str) -> None:
    timm_source = f"timm {TIMM_NAMES[arch]} (https://huggingface.co/timm/{TIMM_NAMES[arch]})"
    register(ModelEntry(fake=_FAKE,
                        name=f"{arch}/timm", arch=arch, compression="dense", method="dense", loader=load_timm,
                        source=timm_source, top1=_FLOAT_TOP1[arch], license=_TIMM_LICENSE[arch]))
    register(ModelEntry(
        fake=_FAKE,
        name=f"{arch}/fp32", arch=arch, compression="dense", method="dense", loader=load_fp32, source=timm_source,
        top1=_FLOAT_TOP1[arch], license=_TIMM_LICENSE[arch],
        notes="VVTQ float network (split q/k/v, no quantizers) with the official float weights the paper's code "
              "requests; VVTQ's own float baselines (DeiT-T 73.75, Swin-T 81.0) are not published as files"))
    for b in (4, 3, 2):
        filename = f"{VVTQ_FILE_STEMS[arch]}_w{b}a{b}.tar"
        register(ModelEntry(
            fake=_FAKE, name=f"{arch}/w{b}a{b}", arch=arch, compression="quantization", method="vvtq", loader=load_vvtq,
            bits=b, parent=f"{arch}/fp32", filename=filename, top1=_VVTQ_TOP1[(arch, b)],
            source=f"the VVTQ README's OneDrive folder {_SHAREPOINT}{_FOLDERS[(arch, b)]} "
                   "(github.com/HuangOwen/Quantization-Variation#models)",
            license="MIT (VVTQ); ImageNet-trained weights: non-commercial research", obtainable="maybe",
            substitute=ptq_substitute,
            substitute_note=ptq_note(arch, b),
            notes="VVTQ QAT with knowledge distillation; weights/activations LSQ per tensor, patch embedding, "
                  "patch merging and head built at 8 bits; each runs at the width its file stores (Swin's "
                  "patch-merging width trains in VVTQ), recorded as provenance['edge_bits']"))


for _arch in ("deit_tiny", "swin_tiny"):
    _register_family(_arch)
del _arch
