"""Fake ResNet checkpoints in the published layouts (SparseML, IST / AC/DC, converted RigL, lottery tickets).

Random weights with every name, wrapper, mask and shape of the real file, so ``resnet.py``'s loaders read
them through their real code paths (strict load, sparsity checks); weights under a mask are dense garbage,
so a loader that forgets the mask gives other outputs. The converters take a model and return what
``torch.save`` should write; ``write_fake`` puts a registry entry's file where its loader looks (the
rehearsal, ``rehearsal/fakes.py``, calls it through the entry's ``fake``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from ._registry import ModelEntry
from .prune import counted_layers, magnitude_prune
from .resnet import LT_LEVELS, RULES, _tv_weights, build_torchvision, lt_mask_filename, torch_hub_checkpoints


def hidden_garbage(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dense values where the mask is 0: a loader that forgets the mask gives different outputs."""
    return torch.where(mask.bool(), v, torch.randn_like(v) + 1.0)


def _renamed(sd: dict[str, torch.Tensor], rules: list[tuple[str, Any]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return out


def to_sparseml(sd: dict[str, torch.Tensor], arch: str = "resnet18") -> dict[str, Any]:
    """SparseZoo ``training/model.pth``: SparseML ResNet names under ``state_dict``."""
    rules = [
        (r"^conv1\.", "input.conv."), (r"^bn1\.", "input.bn."),
        (r"^layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}.identity.conv."),
        (r"^layer(\d)\.(\d+)\.downsample\.1\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}.identity.bn."),
        (r"^layer(\d)\.(\d+)\.", lambda m: f"sections.{int(m[1]) - 1}.{m[2]}."), (r"^fc\.", "classifier.fc."),
    ]
    return {"epoch": 99, "arch_key": arch, "state_dict": _renamed(sd, rules)}


def to_ist(module: nn.Module, prefix: str = "module.") -> dict[str, Any]:
    """IST (AC/DC): ``model_state_dict`` with ``module.`` and ``X._layer.weight`` + ``X._weight_mask`` wrappers."""
    wrapped = {n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    sd = {}
    for key, value in module.state_dict().items():
        layer, _, kind = key.rpartition(".")
        if layer in wrapped:
            mask = (value != 0).float() if kind == "weight" else torch.ones_like(value)
            sd[f"{prefix}{layer}._layer.{kind}"] = hidden_garbage(value, mask)
            sd[f"{prefix}{layer}._{kind}_mask"] = mask
        else:
            sd[prefix + key] = value
    return {"model_config": {"arch": "resnet50", "dataset": "imagenet"}, "model_state_dict": sd}


def to_resnet_tf(module: nn.Module) -> dict[str, Any]:
    """RigL converted by Iofinova et al.: ``ResnetTF`` names in the IST container."""
    rules = [
        (r"^conv1\.", "initial_conv.conv."), (r"^bn1\.", "initial_conv.bn."),
        (r"^(layer\d)\.(\d+)\.conv(\d)\.", r"\1.block.\2.conv\3.conv."),
        (r"^(layer\d)\.(\d+)\.bn(\d)\.", r"\1.block.\2.conv\3.bn."),
        (r"^(layer\d)\.(\d+)\.downsample\.0\.", r"\1.block.\2.shortcut.conv."),
        (r"^(layer\d)\.(\d+)\.downsample\.1\.", r"\1.block.\2.shortcut.bn."),
    ]
    return {"model_config": {"arch": "resnet50_rigl", "dataset": "imagenet"},
            "model_state_dict": _renamed(dict(module.state_dict()), rules)}


def to_lottery_ticket(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The authors' lottery tickets: (weights, masks), both ``model.``-prefixed; weights dense under the mask."""
    weights, masks = {}, {}
    convs = {n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    for key, value in module.state_dict().items():
        if key.rpartition(".")[0] in convs:
            masks["model." + key] = (value != 0).float()
            value = hidden_garbage(value, masks["model." + key])
        weights["model." + key] = value
    return weights, masks


def pruned_resnet(arch: str, method: str, sparsity: float, seed: int = 0) -> nn.Module:
    """A random torchvision ResNet pruned by magnitude over the layers ``method`` counts, to ``sparsity``."""
    torch.manual_seed(seed)
    module = build_torchvision(arch)
    with torch.no_grad():  # one scale for every layer, so a global threshold does not empty the fc
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0, 0.05)
    rule = RULES[method]
    scope = "layerwise" if method == "gmp" else "global"
    magnitude_prune(module, 1 - sparsity, scope=scope, layers=counted_layers(module, exclude=rule.exclude,
                                                                             kinds=rule.kinds))
    return module.eval()


def write_fake(entry: ModelEntry, seed: int = 0) -> str:
    """Write ResNet entry ``entry``'s file(s) with random weights in its published layout; returns the layout."""
    folder = paths.checkpoints_dir()
    if entry.method == "dense":
        torch.manual_seed(seed)
        path = torch_hub_checkpoints() / Path(_tv_weights(entry.name).url).name
        atomic_torch_save(build_torchvision(entry.arch).state_dict(), path)
        return "torchvision state dict (TORCH_HOME/hub/checkpoints)"
    if entry.method == "gmp":
        module = pruned_resnet(entry.arch, "gmp", 0.85, seed)
        atomic_torch_save(to_sparseml(module.state_dict(), entry.arch), folder / entry.filename)
        return "SparseML ResNet (SparseZoo training/model.pth)"
    module = pruned_resnet(entry.arch, entry.method, entry.sparsity, seed)
    if entry.method == "acdc":
        atomic_torch_save(to_ist(module), folder / entry.filename)
        return "IST model_state_dict, module. + _layer/_weight_mask wrappers"
    if entry.method == "rigl":
        atomic_torch_save(to_resnet_tf(module), folder / entry.filename)
        return "ResnetTF (Iofinova converted RigL)"
    weights, masks = to_lottery_ticket(module)
    atomic_torch_save(weights, folder / entry.filename)
    atomic_torch_save(masks, folder / lt_mask_filename(entry.filename))
    assert float(entry.name.rsplit("-", 1)[1]) in LT_LEVELS
    return "lottery ticket weights + mask (model. prefix)"
