"""Key remappers: each checkpoint format's state dict -> torchvision ResNet parameter names.

Every function takes what ``torch.load`` returned and gives a flat ``{name: tensor}`` dict with
torchvision names, ready for a strict ``load_state_dict``. Keys a remapper does not know are
passed through unchanged on purpose: the strict load then names them as unexpected, instead of
them being dropped silently.

Formats (details and sources in docs/checkpoints-and-datasets.md §2-3):
* SparseML ResNet (SparseZoo ``training/model.pth``): ``input.conv``, ``sections.{s}.{b}.conv1``,
  ``...identity.conv``, ``classifier.fc``; wrapped in ``{"state_dict": ...}``.
* IST (AC/DC, Iofinova et al.): ``{"model_config", "model_state_dict"}``, torchvision names, maybe a
  ``module.`` prefix, maybe masked wrappers ``X._layer.weight`` + ``X._weight_mask`` (+ ``_bias_mask``).
* RigL converted by Iofinova et al. (``ResnetTF``): ``initial_conv.conv/bn``,
  ``layerN.block.i.conv{1,2,3}.conv/bn``, ``layerN.block.i.shortcut.conv/bn``, ``fc``; same IST container.
* Lottery tickets (the paper's authors): weights dict + mask dict with the same keys, ``model.`` prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError

StateDict = dict[str, torch.Tensor]

_CONTAINER_KEYS = ("model_state_dict", "state_dict", "model")


def unwrap_container(obj: Any, what: str = "checkpoint") -> StateDict:
    """The tensor dict inside a checkpoint (``state_dict`` / ``model_state_dict`` / ``model`` or itself)."""
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return unwrap_container(obj[key], what)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    found = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"{what} holds no state dict (found {found}); expected a dict of tensors or one under "
                          f"one of {list(_CONTAINER_KEYS)}")


def strip_prefix(sd: Mapping[str, torch.Tensor], prefixes: tuple[str, ...] = ("module.",)) -> StateDict:
    """Drop a leading DataParallel/wrapper prefix from every key that has one."""
    out: StateDict = {}
    for key, value in sd.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def _rename(sd: Mapping[str, torch.Tensor], rules: list[tuple[re.Pattern[str], Any]]) -> StateDict:
    out: StateDict = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            new, n = pattern.subn(repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out


def _section(s: str) -> str:
    return f"layer{int(s) + 1}"


_SPARSEML_RULES = [
    (re.compile(r"^input\.conv\."), "conv1."),
    (re.compile(r"^input\.bn\."), "bn1."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\.identity\.conv\."), lambda m: f"{_section(m[1])}.{m[2]}.downsample.0."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\.identity\.bn\."), lambda m: f"{_section(m[1])}.{m[2]}.downsample.1."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\."), lambda m: f"{_section(m[1])}.{m[2]}."),
    (re.compile(r"^classifier\.fc\."), "fc."),
]


def sparseml_to_torchvision(obj: Any) -> StateDict:
    """SparseML ResNet v1 names (SparseZoo ``model.pth``) -> torchvision names."""
    return _rename(strip_prefix(unwrap_container(obj)), _SPARSEML_RULES)


_WRAPPED = re.compile(r"^(.*)\._layer\.(weight|bias)$")
_MASK = re.compile(r"^(.*)\._(weight|bias)_mask$")


def ist_to_torchvision(obj: Any) -> StateDict:
    """IST checkpoints (AC/DC, Iofinova converted): strip ``module.``, fold ``_layer`` wrappers with their masks.

    A wrapped layer stores the dense ``_layer.weight`` and a ``_weight_mask`` buffer applied in its forward,
    so the effective weight is their product.
    """
    sd = strip_prefix(unwrap_container(obj))
    masks = {(m[1], m[2]): v for k, v in sd.items() if (m := _MASK.match(k))}
    out: StateDict = {}
    for key, value in sd.items():
        if _MASK.match(key):
            continue
        wrapped = _WRAPPED.match(key)
        if wrapped:
            layer, kind = wrapped[1], wrapped[2]
            mask = masks.pop((layer, kind), None)
            if mask is not None:
                value = _apply_mask(value, mask, key)
            key = f"{layer}.{kind}"
        out[key] = value
    if masks:
        layer, kind = next(iter(masks))
        raise CheckpointError(f"mask {layer}._{kind}_mask has no matching {layer}._layer.{kind} in the checkpoint "
                              f"({len(masks)} orphan masks); the file is truncated or not an IST checkpoint")
    return out


_RIGL_RULES = [
    (re.compile(r"^initial_conv\.conv\."), "conv1."),
    (re.compile(r"^initial_conv\.bn\."), "bn1."),
    (re.compile(r"^(layer\d)\.block\.(\d+)\.conv(\d)\.conv\."), lambda m: f"{m[1]}.{m[2]}.conv{m[3]}."),
    (re.compile(r"^(layer\d)\.block\.(\d+)\.conv(\d)\.bn\."), lambda m: f"{m[1]}.{m[2]}.bn{m[3]}."),
    (re.compile(r"^(layer\d)\.block\.(\d+)\.shortcut\.conv\."), lambda m: f"{m[1]}.{m[2]}.downsample.0."),
    (re.compile(r"^(layer\d)\.block\.(\d+)\.shortcut\.bn\."), lambda m: f"{m[1]}.{m[2]}.downsample.1."),
]


def rigl_tf_to_torchvision(obj: Any) -> StateDict:
    """Iofinova's ``ResnetTF`` (converted RigL) names -> torchvision; IST wrappers are folded first."""
    return _rename(ist_to_torchvision(obj), _RIGL_RULES)


def _mask_key(key: str) -> str:
    # torch.nn.utils.prune saves masks as ``<layer>.weight_mask``; the authors' file may use the weight's own name.
    return key[: -len("_mask")] if key.endswith(".weight_mask") else key


def lottery_ticket_to_torchvision(weights_obj: Any, mask_obj: Any) -> StateDict:
    """Lottery tickets: ``mask * weight`` for every key of the mask file, ``model.`` / ``module.`` stripped."""
    prefixes = ("model.", "module.")
    weights = strip_prefix(unwrap_container(weights_obj, "lottery-ticket checkpoint"), prefixes)
    masks = {_mask_key(k): v for k, v in strip_prefix(unwrap_container(mask_obj, "lottery-ticket mask file"),
                                                      prefixes).items()}
    unknown = sorted(set(masks) - set(weights))
    if unknown:
        raise CheckpointError(f"the mask file has {len(unknown)} keys with no weight in the checkpoint "
                              f"(first: {unknown[:3]}); the two files are from different models or levels")
    return {k: _apply_mask(v, masks[k], k) if k in masks else v for k, v in weights.items()}


def _apply_mask(weight: torch.Tensor, mask: torch.Tensor, key: str) -> torch.Tensor:
    if mask.shape != weight.shape:
        raise CheckpointError(f"mask for {key} has shape {tuple(mask.shape)} but the weight has {tuple(weight.shape)}")
    return weight * mask.to(weight.dtype)
