"""ResNet-18/34/50: dense torchvision weights and the paper's sparse checkpoints.

Paper: Misra et al., "Uncovering the Hidden Cost of Model Compression" (arXiv 2308.14969), which
prompts dense torchvision ResNets, SparseZoo GMP ResNet-18/34 and lottery-ticket ResNet-50s; we add
the AC/DC and RigL ResNet-50s of Iofinova et al. (CVPR 2022) as public sparse ResNet-50s.

Every loader builds a plain torchvision ResNet, remaps the file's keys (``_layouts``), loads it with
``strict=True`` after a key/shape check that names what is wrong, then measures the zero fraction
over the layers the source counts and raises ``CheckpointError`` unless it matches the name. The
measured numbers go into ``SourceModel.provenance``. Sources, formats and caveats:
docs/checkpoints-and-datasets.md §1-3 (shared research notes).

Sparsity conventions (``RULES``):
* AC/DC: every Conv2d and the fc, weights only (its pruner config lists conv1 ... fc, ``weight_only``).
* RigL: every Conv2d and the fc (the ERK budget spans all masked layers; a dense stem shifts the figure
  by < 0.05 %, inside the tolerance).
* Lottery tickets: Conv2d only, stem ``conv1`` excluded, as the authors' ``check_sparsity(conv1=False)``.
* GMP (SparseZoo pruned-conservative): the per-layer targets of the recipe were not found, so the check
  is a floor (``GMP_MIN_SPARSITY``) over the same layers as the lottery tickets, and the measured value is
  recorded.

Lottery-ticket state index: the authors load ``resnet50_dyn4_{k}_checkpoint.pth`` (+ ``_mask.pth``) and
their code does not say which k is which sparsity. The nine levels shrink by ~21 % each (20 % IMP rounds
measured over conv layers without conv1), so we assume k = pruning round = 1..9 for 79.122 ... 11.571 %
remaining (their default k = 9 is then the sparsest). The loader's sparsity check catches a wrong guess
and names the level the file really is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from .. import paths
from .. import rehearsal_mode as rehearsal
from ..errors import CheckpointError, MissingFileError
from . import _checkpoints, _layouts
from ._checkpoints import load_file, offline, resolve_checkpoint, sha256_of
from ._registry import ModelEntry, SourceModel, get_entry, register
from .imagenet import imagenet_classes
from .prune import counted_layers, magnitude_prune, zero_counts

__all__ = ["RULES", "SparsityRule", "build_torchvision", "tf_same_maxpool", "torch_hub_checkpoints"]

TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); weights trained on ImageNet (non-commercial research terms)"
IMAGENET_TERMS = "ImageNet terms (non-commercial research)"
GMP_MIN_SPARSITY = 0.5  # floor for "pruned-conservative": the paper reports ~80-90 % per layer
GMP_SUBSTITUTE_SPARSITY = 0.85  # midpoint of that range, for the layer-wise substitute
CONV_FC = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class SparsityRule:
    """Which weights a source counts when it states a sparsity, and how far a file may be from the claim."""

    kinds: tuple[type[nn.Module], ...]
    exclude: tuple[str, ...]
    tol: float  # absolute tolerance on the zero fraction
    what: str  # the counted layers, in words, for provenance and errors


RULES: dict[str, SparsityRule] = {
    "dense": SparsityRule(CONV_FC, (), 0.01, "all Conv2d + Linear weights"),
    "gmp": SparsityRule((nn.Conv2d,), ("conv1",), 0.0, "Conv2d weights except the stem conv1"),
    "acdc": SparsityRule(CONV_FC, (), 0.005, "all Conv2d + Linear weights (AC/DC prunes conv1..fc, weights only)"),
    "rigl": SparsityRule(CONV_FC, (), 0.01, "all Conv2d + Linear weights (RigL ERK budget)"),
    "lt": SparsityRule((nn.Conv2d,), ("conv1",), 0.002,
                       "Conv2d weights except the stem conv1 (authors' check_sparsity(conv1=False))"),
}


# --------------------------------------------------------------------------------------------- building


def build_torchvision(arch: str) -> nn.Module:
    """A randomly initialised torchvision ``arch`` (``resnet18`` ...); loaders fill it strictly."""
    return getattr(torchvision.models, arch)(weights=None)


def tf_same_maxpool() -> nn.Module:
    """The stem max pool of RigL's TF ResNet as Iofinova's ``ResnetTF`` runs it.

    TF "SAME" pads one zero row/column at the bottom/right only, so the 3x3/2 windows sit one pixel off
    torchvision's symmetric padding. Zero padding equals -inf padding here because the input is post-ReLU.
    """
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(kernel_size=3, stride=2, padding=0))


def torch_hub_checkpoints() -> Path:
    """Where torch.hub / torchvision keep downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def strict_load(module: nn.Module, sd: dict[str, torch.Tensor], name: str, path: Path | str) -> None:
    """``load_state_dict(strict=True)``, preceded by a key and shape check whose error says what is wrong."""
    _checkpoints.strict_load(module, sd, f"{name}: strict key/shape check failed for {path}",
                             "The file is not in the layout this entry expects, or is truncated: fetch it again "
                             "from its source")


def check_sparsity(entry: ModelEntry, module: nn.Module) -> dict[str, Any]:
    """Measure the zero fraction the way ``entry``'s source counts it; raise unless it matches the name."""
    rule = RULES[entry.method]
    zeros, total = zero_counts(counted_layers(module, exclude=rule.exclude, kinds=rule.kinds))
    measured = zeros / total
    if entry.method == "gmp":
        ok, claim = measured >= GMP_MIN_SPARSITY, f"at least {GMP_MIN_SPARSITY:.2f} (a pruned model)"
    else:
        expected = entry.sparsity or 0.0
        ok, claim = abs(measured - expected) <= rule.tol, f"{expected:.4f} +- {rule.tol}"
    if not ok:
        raise CheckpointError(f"{entry.name}: sparsity check failed: {measured:.4f} of {total} weights are zero over "
                              f"{rule.what}, but the name claims {claim}.{_sparsity_hint(entry, measured)}")
    return {"measured_sparsity": round(measured, 6), "counted_layers": rule.what, "counted_params": total,
            "zeros": zeros}


def _sparsity_hint(entry: ModelEntry, measured: float) -> str:
    if entry.method != "lt":
        return " The file is another model or was saved without its masks applied."
    level = min(LT_LEVELS, key=lambda lv: abs((1 - lv / 100) - measured))
    return (f" It matches resnet50/lt-{level} (state index k={LT_LEVELS[level]}); the k-to-level mapping is our "
            "assumption (the authors' code does not state it): rename the files if the authors say otherwise.")


def _source_model(entry: ModelEntry, module: nn.Module, provenance: dict[str, Any]) -> SourceModel:
    return SourceModel(name=entry.name, module=module, class_names=imagenet_classes(), provenance=provenance)


# ---------------------------------------------------------------------------------------------- dense


_TV_WEIGHTS = {
    "resnet18/dense": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet34/dense": ("ResNet34_Weights", "IMAGENET1K_V1"),
    "resnet50/dense": ("ResNet50_Weights", "IMAGENET1K_V2"),
    "resnet50/dense-v1": ("ResNet50_Weights", "IMAGENET1K_V1"),
}


def _tv_weights(name: str) -> torchvision.models.WeightsEnum:
    enum, member = _TV_WEIGHTS[name]
    return getattr(getattr(torchvision.models, enum), member)


def _hash_prefix(filename: str) -> str | None:
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match else None


def fetch_hub_weights(url: str, what: str) -> Path:
    """A torchvision-style weight file (``<name>-<hash prefix>.pth``) from TORCH_HOME or the checkpoints
    folder, else downloaded into TORCH_HOME with its hash prefix checked; offline, a MissingFileError."""
    folder = torch_hub_checkpoints()
    path = folder / Path(url).name
    for candidate in (path, paths.checkpoints_dir() / path.name):
        if candidate.exists():
            return candidate
    missing = MissingFileError(what, path.name, url, str(folder))
    if offline():
        raise missing
    folder.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=_hash_prefix(path.name))
    except Exception as exc:  # no network, proxy, bad hash: the same advice
        path.unlink(missing_ok=True)
        raise missing from exc
    return path


def verified_hub_weights(url: str, what: str, owner: str) -> tuple[Path, str]:
    """``fetch_hub_weights``, then the file's sha256 checked against the prefix its name carries (torchvision's
    convention; a file already on disk was never checked by the download); returns (path, sha256)."""
    path = fetch_hub_weights(url, what)
    sha = sha256_of(path)
    prefix = _hash_prefix(path.name)
    if prefix and not sha.startswith(prefix) and not rehearsal.active():  # fake weights in a rehearsal
        raise CheckpointError(f"{owner}: {path} has sha256 {sha[:12]}..., not the {prefix}... its name promises; "
                              f"the file is corrupt: delete it and fetch it again from {url}")
    return path, sha


def load_dense(entry: ModelEntry) -> SourceModel:
    """Dense torchvision weights (the file torchvision's own enum downloads), hash- and strict-checked."""
    weights = _tv_weights(entry.name)
    path, sha = verified_hub_weights(weights.url, f"torchvision weights of {entry.name}", entry.name)
    module = build_torchvision(entry.arch)
    strict_load(module, load_file(path), entry.name, path)
    resize = weights.transforms().resize_size[0]
    provenance = {"format": "torchvision", "weights": f"{type(weights).__name__}.{weights.name}",
                  "source_file": str(path), "sha256": sha, "eval_resize": resize, "interpolation": "bilinear",
                  **check_sparsity(entry, module)}
    return _source_model(entry, module, provenance)


# --------------------------------------------------------------------------------------------- sparse


def _fetch_sparsezoo(entry: ModelEntry) -> Path:
    """The SparseZoo ``training/model.pth``: placed by hand (default), or via the optional sparsezoo 1.8.1 client."""
    folder = paths.checkpoints_dir()
    path = folder / entry.filename
    if path.exists():
        return path
    model_dir = path.parents[1]
    how = (f"SparseZoo stub {entry.source} (SparseZoo is end-of-life since June 2025; with the last working client, "
           f"`pip install sparsezoo==1.8.1`, run `sparsezoo.download {entry.source} --save-dir {model_dir}`, "
           "or copy training/model.pth by hand)")
    missing = MissingFileError(f"checkpoint of {entry.name}", entry.filename, how, str(folder))
    if offline():
        raise missing
    try:
        from sparsezoo import Model
    except ImportError:
        raise missing from None
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")  # the client pings Google Analytics otherwise
    try:
        Model(entry.source, download_path=str(model_dir)).download()
    except Exception as exc:  # the API server may be gone after end-of-life
        raise missing from exc
    if not path.exists():
        raise missing
    return path


def load_sparse(entry: ModelEntry, *, remap: Callable[[Any], dict[str, torch.Tensor]], layout: str) -> SourceModel:
    """One-file sparse checkpoints (GMP, AC/DC, RigL): remap keys, strict load, check sparsity."""
    path = _fetch_sparsezoo(entry) if entry.method == "gmp" else resolve_checkpoint(entry)
    module = build_torchvision(entry.arch)
    strict_load(module, remap(load_file(path)), entry.name, path)
    interpolation = "bilinear"
    if entry.method == "rigl":
        module.maxpool = tf_same_maxpool()
        interpolation = "bicubic"  # how Iofinova et al. evaluate the converted TF weights
    provenance = {"format": layout, "source_file": str(path), "sha256": sha256_of(path), "eval_resize": 256,
                  "interpolation": interpolation, **check_sparsity(entry, module)}
    return _source_model(entry, module, provenance)


def lt_mask_filename(filename: str) -> str:
    """``resnet50_dyn4_{k}_checkpoint.pth`` -> ``resnet50_dyn4_{k}_mask.pth``."""
    return filename.replace("_checkpoint.pth", "_mask.pth")


def load_lottery_ticket(entry: ModelEntry) -> SourceModel:
    """The authors' lottery tickets: ``mask * weight`` from two files, strict load, sparsity as they count it."""
    path = resolve_checkpoint(entry)
    mask_path = resolve_checkpoint(entry, lt_mask_filename(entry.filename))
    module = build_torchvision(entry.arch)
    strict_load(module, _layouts.lottery_ticket_to_torchvision(load_file(path), load_file(mask_path)), entry.name,
                path)
    provenance = {"format": "lottery-ticket mask x weight", "source_file": str(path), "sha256": sha256_of(path),
                  "mask_file": str(mask_path), "mask_sha256": sha256_of(mask_path), "eval_resize": 256,
                  "interpolation": "bilinear", "state_index": LT_LEVELS[float(entry.name.rsplit("-", 1)[1])],
                  **check_sparsity(entry, module)}
    return _source_model(entry, module, provenance)


def magnitude_substitute(entry: ModelEntry, *, scope: str) -> SourceModel:
    """The labelled stand-in: the dense parent, magnitude-pruned over the layers the source counts."""
    parent_entry = get_entry(entry.parent)
    parent = parent_entry.loader(parent_entry)
    rule = RULES[entry.method]
    sparsity = GMP_SUBSTITUTE_SPARSITY if entry.sparsity is None else entry.sparsity
    layers = counted_layers(parent.module, exclude=rule.exclude, kinds=rule.kinds)
    result = magnitude_prune(parent.module, 1.0 - sparsity, scope=scope, layers=layers)
    provenance = {"format": "magnitude-pruned substitute", "parent": entry.parent,
                  "parent_provenance": parent.provenance, "eval_resize": parent.provenance.get("eval_resize", 256),
                  "interpolation": "bilinear", "measured_sparsity": round(result["measured_sparsity"], 6),
                  "counted_layers": rule.what, "counted_params": result["counted_params"], "zeros": result["zeros"],
                  "pruning": {k: result[k] for k in ("scope", "requested_remaining", "finetuned")}}
    return _source_model(entry, parent.module, provenance)


# -------------------------------------------------------------------------------------------- entries

_FAKE = "vpcost_utils.models.resnet_fakes:write_fake"  # random weights in the published layout (rehearsal)

for _name in _TV_WEIGHTS:
    _w = _tv_weights(_name)
    register(ModelEntry(
        fake=_FAKE,
        name=_name, arch=_name.split("/")[0], compression="dense", method="dense", loader=load_dense, sparsity=0.0,
        source=f"torchvision {type(_w).__name__}.{_w.name} ({_w.url})", filename=Path(_w.url).name,
        top1=_w.meta["_metrics"]["ImageNet-1K"]["acc@1"], license=TORCHVISION_LICENSE, obtainable="yes",
        notes="Downloaded by torchvision into $TORCH_HOME/hub/checkpoints (VPCOST_HOME/torch by default)."
        + (" IMAGENET1K_V2: the paper's dense ResNet-50, a newer recipe (80.9 %) than every sparse ResNet-50 here "
           "(~76 % recipes); eval resize 232." if _w.name == "IMAGENET1K_V2" else ""),
    ))

_GMP_SUBSTITUTE = partial(magnitude_substitute, scope="layerwise")
for _depth, _top1 in (("18", 69.8), ("34", 73.3)):
    register(ModelEntry(
        fake=_FAKE, name=f"resnet{_depth}/gmp", arch=f"resnet{_depth}", compression="unstructured", method="gmp",
        loader=partial(load_sparse, remap=_layouts.sparseml_to_torchvision, layout="SparseML ResNet"),
        sparsity=None, parent=f"resnet{_depth}/dense",
        source=f"zoo:cv/classification/resnet_v1-{_depth}/pytorch/sparseml/imagenet/pruned-conservative",
        filename=f"sparsezoo/resnet_v1-{_depth}-pruned-conservative/training/model.pth", top1=_top1,
        license=f"Apache-2.0 (SparseML/SparseZoo; no separate model license found); {IMAGENET_TERMS}",
        obtainable="maybe", substitute=_GMP_SUBSTITUTE,
        substitute_note=(f"layer-wise L1 magnitude pruning of resnet{_depth}/dense to {GMP_SUBSTITUTE_SPARSITY:.0%} "
                         "zeros in every Conv2d but conv1, no fine-tune (not the GMP recipe)"),
        notes=("Gradual magnitude pruning (Zhu & Gupta), 'conservative' = ~100 % accuracy recovery. Per-layer "
               f"sparsity not published; the check is >= {GMP_MIN_SPARSITY} over Conv2d without conv1 and the "
               "measured value is recorded. SparseZoo is end-of-life: manual download is the default."),
    ))

_ACDC = {80: ("081f90d21c9e4236bd14", 76.45), 90: ("1b4f578130364e5bb929", 75.03),
         95: ("e51ab6ee47bb490cb119", 73.14), 98: ("9ec9f8f4eda04c5f9d74", 68.48)}
_GLOBAL_SUBSTITUTE = partial(magnitude_substitute, scope="global")
for _s, (_key, _top1) in _ACDC.items():
    register(ModelEntry(
        fake=_FAKE, name=f"resnet50/acdc-{_s}", arch="resnet50", compression="unstructured", method="acdc",
        loader=partial(load_sparse, remap=_layouts.ist_to_torchvision, layout="IST model_state_dict"),
        sparsity=_s / 100, parent="resnet50/dense-v1", source=f"https://seafile.ist.ac.at/f/{_key}/?dl=1",
        filename=f"resnet50_acdc_{_s}.pth", top1=_top1,
        license=f"Apache-2.0 (IST-DASLab/ACDC); {IMAGENET_TERMS}", obtainable="maybe",
        substitute=_GLOBAL_SUBSTITUTE,
        substitute_note=(f"global L1 magnitude pruning of resnet50/dense-v1 to {_s} % zeros over all Conv2d + Linear "
                         "weights, no fine-tune (not AC/DC training)"),
        notes=("AC/DC (Peste et al., NeurIPS 2021), global magnitude, 100 epochs; IST-DASLab/ACDC README links. "
               "Parent is the V1 dense model: a comparable ~76 % recipe."),
    ))

_RIGL = {80: 77.17, 90: 76.42, 95: 74.63}
for _s, _top1 in _RIGL.items():
    register(ModelEntry(
        fake=_FAKE, name=f"resnet50/rigl-{_s}", arch="resnet50", compression="unstructured", method="rigl",
        loader=partial(load_sparse, remap=_layouts.rigl_tf_to_torchvision, layout="ResnetTF (Iofinova converted)"),
        sparsity=_s / 100, parent="resnet50/dense-v1",
        source=(f"Iofinova et al. converted checkpoints, seafile folder "
                f"https://seafile.ist.ac.at/d/91de9650cfb54b77b7d1/ (file rigl_erk5x_{_s}.pth); TF original "
                f"https://storage.googleapis.com/gresearch/rigl/s{_s}erk5x.tar.gz"),
        filename=f"rigl_erk5x_{_s}.pth", top1=_top1,
        license=f"Apache-2.0 (google-research/rigl, IST-DASLab/sparse-imagenet-transfer); {IMAGENET_TERMS}",
        obtainable="maybe", substitute=_GLOBAL_SUBSTITUTE,
        substitute_note=(f"global L1 magnitude pruning of resnet50/dense-v1 to {_s} % zeros over all Conv2d + Linear "
                         "weights, no fine-tune (not RigL training)"),
        notes=("RigL ERK 5x (Evci et al., ICML 2020); the paper does not say 1x or 5x. Evaluate with BICUBIC resize "
               "(provenance['interpolation']). The stem max pool uses TF 'SAME' padding (tf_same_maxpool), as "
               "ResnetTF does; avg pool 7 = adaptive pool at 224 px."),
    ))

LT_LEVELS: dict[float, int] = {79.122: 1, 62.575: 2, 49.35: 3, 38.793: 4, 30.407: 5, 23.807: 6, 18.664: 7,
                               14.671: 8, 11.571: 9}  # remaining-weight % -> assumed state index k (see docstring)
for _level, _k in LT_LEVELS.items():
    register(ModelEntry(
        fake=_FAKE, name=f"resnet50/lt-{_level}", arch="resnet50", compression="unstructured", method="lt",
        loader=load_lottery_ticket, sparsity=round(1 - _level / 100, 6), parent="resnet50/dense-v1",
        source=("private: the paper's authors (landskape-ai/Reprogram_LT README: 'available upon reasonable "
                f"request'); files resnet50_dyn4_{_k}_checkpoint.pth + resnet50_dyn4_{_k}_mask.pth"),
        filename=f"resnet50_dyn4_{_k}_checkpoint.pth", top1=None,
        license="unknown (private files, no license given)", obtainable="no", substitute=_GLOBAL_SUBSTITUTE,
        substitute_note=(f"global L1 magnitude pruning of resnet50/dense-v1 to {_level} % remaining over Conv2d "
                         "without conv1, no fine-tune (IMP with rewinding is too costly; a different method)"),
        notes=(f"Iterative magnitude pruning with rewinding, level {_k} of 9, {_level} % weights remaining over "
               "Conv2d without conv1. State index k is our assumption (k = round). No per-level top-1 published; "
               "cs-giung/lottery-ticket-imagenet reports ~76.1-76.6 % for a comparable IMP series."),
    ))
