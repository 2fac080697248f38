"""Fake VVTQ checkpoints and timm's pretrained DeiT / Swin files, in their published layouts.

``vvtq_file`` is what VVTQ's ``train_VVTQ.py`` saves; ``trained_vvtq`` a network with initialised steps as
after QAT; ``write_fake`` puts a registry entry's file where ``vvtq.py``'s loaders look (the rehearsal calls
it through the entry's ``fake``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from . import vvtq
from ._registry import ModelEntry
from .lsq import init_vvtq_steps, vvtq_quantizers
from .vvtq import TIMM_NAMES


def vvtq_file(model: nn.Module, prefix: str = "module.") -> dict[str, Any]:
    """What VVTQ's ``train_VVTQ.py`` saves: DDP-prefixed ``state_dict`` beside its training state."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    return {"epoch": 7, "arch": "x", "state_dict": state, "best_acc1": torch.tensor(61.5),
            "optimizer": {"state": {}, "param_groups": []}}


def trained_vvtq(arch: str, bits: int, cfg: Any = None, seed: int = 0, *, mse: bool = True) -> nn.Module:
    """A VVTQ network with perturbed weights and initialised steps (as after QAT).

    ``mse=True`` searches every step by MSE on a batch, as VVTQ does (minutes for a full-size Swin-T on a
    CPU); ``mse=False`` uses LSQ's closed-form step, 2 mean|w| / sqrt(2^(b-1) - 1), and 0.1 for activations.
    """
    torch.manual_seed(seed)
    model = vvtq.build_vvtq(arch, bits, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("alpha", "beta")):
                p.add_(0.1 * torch.randn_like(p))
        if not mse:
            for q in vvtq_quantizers(model).values():
                if q.bits is None or not getattr(q, "used", True):
                    continue  # VVTQ never initialises Swin's unused patch quantizer
                weight = getattr(q, "weight", None)
                step = 2 * weight.abs().mean() / (2 ** (q.bits - 1) - 1) ** 0.5 if weight is not None else 0.1
                q.alpha.fill_(float(step))
                q.init_state.fill_(1)
    if mse:
        size = model.cfg.img_size
        init_vvtq_steps(model, torch.randn(2, 3, size, size))
    return model.eval()


def write_fake(entry: ModelEntry, seed: int = 0) -> str:
    """Write DeiT / Swin entry ``entry``'s file with random weights in its published layout; returns the layout."""
    if entry.method == "vvtq":
        model = trained_vvtq(entry.arch, entry.bits, seed=seed, mse=False)
        atomic_torch_save(vvtq_file(model), paths.checkpoints_dir() / entry.filename)
        return "VVTQ train_VVTQ.py checkpoint (module. prefix, alpha[7], nbits, init_state)"
    return _write_timm_hub(entry.arch, seed)


def _write_timm_hub(arch: str, seed: int) -> str:
    """timm's pretrained file as ``hf_hub_download`` caches it: ``models--timm--<name>/snapshots/<rev>/``."""
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file

    name = TIMM_NAMES[arch]
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    base = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    snapshot = base / "snapshots" / revision
    if not (snapshot / "model.safetensors").exists():
        torch.manual_seed(seed)
        model = timm.create_model(name.split(".")[0], pretrained=False)
        snapshot.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text(revision)
    return "timm safetensors in the Hugging Face hub cache"
