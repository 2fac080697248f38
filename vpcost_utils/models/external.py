"""Source models from outside the registry: any timm or torchvision classifier, a checkpoint file, a module.

Names are self-contained strings, so they travel inside a ``RunSpec`` to any runner process:

* ``timm:<name>[.<tag>]`` (``timm:resnet50.a1_in1k``): timm's pretrained weights, read from the
  Hugging Face cache under ``HF_HOME`` (downloaded there unless ``VPCOST_OFFLINE`` is set).
* ``torchvision:<arch>[.<WEIGHTS>]`` (``torchvision:resnet18.IMAGENET1K_V1``): a torchvision weights
  enum member (``DEFAULT`` when omitted, recorded as the member it resolves to), from the torch hub cache.
* ``file:<path>?arch=<arch>[&num_classes=K][&compression=C][&parent=P]``: a state dict saved with
  ``torch.save(model.state_dict(), path)``, loaded strictly into ``<arch>`` built without weights;
  ``<arch>`` is ``timm:<name>``, ``torchvision:<arch>[.<WEIGHTS>]`` or a registry architecture
  (``resnet50``, ``efficientnet_lite0``, ``deit_tiny``, ``smallcnn`` ...).
* From Python, ``register_module("mynet/pruned-70", module, mean=..., std=...)`` registers an
  in-memory ``nn.Module`` under an ``<arch>/<tag>`` name (in-process runners only).

Input size and normalisation come from the model's own config (timm's ``pretrained_cfg``,
torchvision's weight transforms) and are recorded in the provenance together with the measured
sparsity (exact zeros over every Conv2d / Linear weight) and a bit-width estimate (distinct values
per weight tensor). Every loader checks on a dummy batch that the network returns ``[B, K]`` logits
before any training starts (``check_output``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, MissingFileError, ModelOutputError, SpecError, UnknownNameError, check_choice
from ..names import split_options
from . import _checkpoints
from ._checkpoints import load_file, offline, sha256_of
from ._registry import _ENTRIES, IMAGENET_MEAN, IMAGENET_STD, ModelEntry, SourceModel, freeze, register_resolver
from .imagenet import imagenet_classes
from .prune import counted_layers, zero_counts

__all__ = ["PREFIXES", "check_model", "check_output", "external_entry", "is_external", "measure_compression",
           "register_module", "unregister_module"]

PREFIXES = ("timm:", "torchvision:", "file:")
COMPRESSIONS = ("dense", "unstructured", "structured", "quantization", "unstated")
FILE_OPTIONS = {  # the query keys of a ``file:`` name, with their meaning
    "arch": "architecture the file was saved from: timm:<name>, torchvision:<arch>[.<WEIGHTS>] or a registry arch",
    "num_classes": "K, the width of the file's classifier head (default: the architecture's, 1000 for ImageNet)",
    "compression": f"what the file is, one of {', '.join(COMPRESSIONS)} (default: unstated)",
    "parent": "the dense counterpart's model name, for the report's pairing (optional)",
}
REGISTERED_METHOD = "registered"  # ModelEntry.method of register_module entries
MAX_QUANT_BITS = 12  # a weight tensor with more than 2**12 distinct values is float, not quantized
QUANTIZED_SHARE = 0.9  # share of the counted weights that must look quantized for a bit-width estimate
CHECK_BATCH = 2  # images in the dummy batch of check_output


# ------------------------------------------------------------------------------------------------ names


def is_external(name: str) -> bool:
    """True for ``timm:``, ``torchvision:`` and ``file:`` names (registry names never hold a colon)."""
    return name.startswith(PREFIXES)


def external_entry(name: str) -> ModelEntry:
    """The registry-style entry of an external name; cheap (reads no weights), so ``get_entry`` can call it."""
    if name.startswith("timm:"):
        return _timm_entry(name)
    if name.startswith("torchvision:"):
        return _torchvision_entry(name)
    if name.startswith("file:"):
        return _file_entry(name)
    raise UnknownNameError("model source", name.split(":", 1)[0] + ":", PREFIXES)


def _positive_int(name: str, key: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise SpecError(f"{name!r}: {key}={value!r} must be a positive integer")
    return int(value)


def _entry(name: str, arch: str, loader: Callable[..., SourceModel], *, compression: str = "dense",
           method: str = "dense", source: str = "", license: str = "", parent: str | None = None) -> ModelEntry:
    return ModelEntry(name=name, arch=arch, compression=compression, method=method, loader=loader, source=source,
                      license=license or "unknown (stated by the model's provider)", parent=parent)


# ----------------------------------------------------------------------------------------------- checks


def measure_compression(module: nn.Module) -> dict[str, Any]:
    """Zero fraction over every Conv2d / Linear weight and a bit-width estimate from distinct values.

    A weight tensor looks quantized when its non-zero values repeat (on average at least twice) and
    take at most ``2**MAX_QUANT_BITS`` values; float weights almost never repeat. When such tensors
    hold at least ``QUANTIZED_SHARE`` of the counted weights, the estimate is ``ceil(log2(levels))``
    per tensor: its maximum (8 for a W4 network whose first and last layers stay at 8 bits) and its
    median (4 there). Otherwise the network is float and both are ``None``.
    """
    layers = counted_layers(module, exclude=(), kinds=(nn.Conv2d, nn.Linear))
    if not layers:
        return {"measured_sparsity": None, "counted_layers": "no Conv2d / Linear layers", "bits_estimate": None}
    zeros, total = zero_counts(layers)
    levels = [(_levels(layer.weight), layer.weight.numel()) for _, layer in layers]
    quantized = [n for n, _ in levels if n is not None]
    share = sum(size for n, size in levels if n is not None) / total
    bits = sorted(max(1, math.ceil(math.log2(n))) for n in quantized) if share >= QUANTIZED_SHARE else []
    return {"measured_sparsity": round(zeros / total, 6), "counted_layers": "all Conv2d + Linear weights",
            "counted_params": total, "zeros": zeros, "quantized_weight_share": round(share, 6),
            "max_distinct_weights": max(quantized) if bits else None,
            "bits_estimate": bits[-1] if bits else None, "bits_estimate_median": bits[len(bits) // 2] if bits else None}


@torch.no_grad()
def _levels(weight: torch.Tensor) -> int | None:
    """Distinct values of a weight tensor that looks quantized (its non-zero values repeat), else None."""
    flat = weight.detach().flatten()
    nonzero = flat[flat != 0]
    if nonzero.numel() == 0:
        return 1
    cap = 2 ** MAX_QUANT_BITS
    # the same test on the first 2 * cap values first: float weights fail it there, without a full sort
    head = nonzero[:2 * cap]
    if 2 * torch.unique(head).numel() > head.numel():
        return None
    distinct = int(torch.unique(nonzero).numel())
    if distinct > cap or nonzero.numel() < 2 * distinct:
        return None
    return distinct + int(nonzero.numel() < flat.numel())  # zero is one more level when present


@torch.no_grad()
def check_output(model: SourceModel) -> SourceModel:
    """Raise ``ModelOutputError`` unless ``model`` maps a dummy ``[2, 3, canvas, canvas]`` batch to ``[2, K]``.

    The module must already be frozen (eval mode): a dummy batch through BatchNorm in train mode
    would change its running statistics. Returns ``model`` with ``provenance["output_checked"]`` set.
    """
    c, k = model.canvas_size, model.num_classes
    param = next(iter(model.module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(CHECK_BATCH, 3, c, c, device=device)
    try:
        out = model.module(x)
    except Exception as exc:  # any failure here is the same problem: the input contract does not fit
        raise ModelOutputError(f"{model.name}: a [{CHECK_BATCH}, 3, {c}, {c}] batch fails in forward "
                               f"({type(exc).__name__}: {exc}); the model must take {c}x{c} RGB images: state the "
                               "input size it was built for (canvas=... for register_module)") from exc
    if not isinstance(out, torch.Tensor):
        raise ModelOutputError(f"{model.name}: forward returns {type(out).__name__}, not a logits tensor; wrap the "
                               "model so that forward returns only the [B, K] class logits")
    if tuple(out.shape) != (CHECK_BATCH, k):
        hint = (f" it looks like a {out.shape[-1]}-way classifier: declare num_classes={out.shape[-1]}"
                if out.ndim == 2 else " it returns features or maps, not logits: give it its classifier head")
        raise ModelOutputError(f"{model.name}: output shape {tuple(out.shape)} for a batch of {CHECK_BATCH}, but a "
                               f"{k}-way source classifier must give ({CHECK_BATCH}, {k});{hint} "
                               "(file:...&num_classes=K, register_module(..., num_classes=K)), or use the model "
                               "with its K-way head")
    model.provenance["output_checked"] = f"[{CHECK_BATCH}, 3, {c}, {c}] -> [{CHECK_BATCH}, {k}]"
    return model


def check_model(name: str, *, substitute: bool = False, device: str | torch.device = "cpu") -> SourceModel:
    """``create_model(name)`` plus the logits check, for any name: call it before training anything."""
    from ._registry import create_model

    model = create_model(name, substitute=substitute, device=device)
    return model if "output_checked" in model.provenance else check_output(model)


def _finish(name: str, module: nn.Module, *, canvas: int, mean: tuple, std: tuple, num_classes: int,
            provenance: dict[str, Any], class_names: list[str] | None = None) -> SourceModel:
    """Freeze, measure, wrap and check: the common tail of every external loader."""
    freeze(module)
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if class_names is None and num_classes == 1000:
        class_names = imagenet_classes()  # timm / torchvision in1k heads share torchvision's class order
    provenance = {"name": name, **provenance, "input_size": canvas, "mean": list(mean), "std": list(std),
                  "num_classes": num_classes, "substitute": False, **measure_compression(module)}
    model = SourceModel(name, module, canvas_size=canvas, mean=mean, std=std, num_classes=num_classes,
                        class_names=class_names, provenance=provenance)
    return check_output(model)


# ------------------------------------------------------------------------------------------------- timm


def _timm_cfg(arch: str) -> Any:
    """timm's pretrained config of ``arch`` (``resnet50.a1_in1k``, or ``resnet50`` for its default tag)."""
    import timm

    base = arch.split(".", 1)[0]
    try:
        cfg = timm.models.get_pretrained_cfg(arch) if timm.is_model(base) else None
    except RuntimeError:  # timm: the architecture exists, the tag does not
        raise UnknownNameError("timm pretrained model", arch, timm.list_pretrained(f"{base}.*")) from None
    if cfg is None:
        raise UnknownNameError("timm pretrained model", arch, timm.list_pretrained())
    return cfg


def _timm_entry(name: str) -> ModelEntry:
    arch = name.removeprefix("timm:")
    cfg = _timm_cfg(arch)
    source = f"timm {cfg.architecture}.{cfg.tag} (https://huggingface.co/{cfg.hf_hub_id or 'timm'})"
    return _entry(name, cfg.architecture, partial(load_timm, timm_name=arch), source=source,
                  license=cfg.license or "")


def _hf_file(repo: str, filenames: list[str], what: str) -> Path:
    """The first of ``filenames`` in the Hugging Face cache (downloaded unless offline), else MissingFileError."""
    from huggingface_hub import constants, hf_hub_download

    errors = []
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=offline()))
        except Exception as exc:  # not cached, no network, no such file: try the next name
            errors.append(exc)
    how = f"https://huggingface.co/{repo} (with the network on: `python -c \"import vpcost_utils.models as m; " \
          f"m.create_model('{what}')\"`, or `huggingface-cli download {repo}`)"
    raise MissingFileError(f"pretrained weights of {what}", f"{repo}/{filenames[0]}", how,
                           f"{constants.HF_HUB_CACHE} (the Hugging Face cache under HF_HOME)") from errors[-1]


def _timm_weights(cfg: Any, what: str) -> Path:
    if cfg.hf_hub_id:
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        return _hf_file(cfg.hf_hub_id, names, what)
    if cfg.url:
        from .resnet import fetch_hub_weights

        return fetch_hub_weights(cfg.url, f"pretrained weights of {what}")
    raise MissingFileError(f"pretrained weights of {what}", "a weights file", "nowhere: timm lists no weights for "
                           "this tag; pick a tag from timm.list_pretrained()", "the Hugging Face cache")


def load_timm(entry: ModelEntry, *, timm_name: str) -> SourceModel:
    """timm model with its pretrained weights; timm itself loads them strictly from the cached file."""
    import timm

    cfg = _timm_cfg(timm_name)
    file = _timm_weights(cfg, entry.name)
    # the file is located first, so a load error is never reported as a missing file
    module = timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay={"file": str(file)})
    return _finish(entry.name, module, **_timm_io(module), provenance={
        "source": "timm", "weights": f"{cfg.architecture}.{cfg.tag}", "source_file": str(file),
        "eval_crop_pct": cfg.crop_pct, "interpolation": cfg.interpolation})


def _timm_io(module: nn.Module) -> dict[str, Any]:
    """Canvas, normalisation and classes from a timm model's ``pretrained_cfg``."""
    return {**_cfg_io(getattr(module, "pretrained_cfg", None) or {}),
            "num_classes": int(getattr(module, "num_classes", 1000))}


def _cfg_io(cfg: dict[str, Any]) -> dict[str, Any]:
    size = cfg.get("input_size", (3, 224, 224))
    return {"canvas": int(size[-1]), "mean": tuple(cfg.get("mean", IMAGENET_MEAN)),
            "std": tuple(cfg.get("std", IMAGENET_STD))}


# ------------------------------------------------------------------------------------------ torchvision


def _tv_weights(spec: str) -> tuple[str, Any]:
    """``"resnet18.IMAGENET1K_V1"`` -> ("resnet18", the weights enum member); no tag means DEFAULT."""
    import torchvision

    arch, _, tag = spec.partition(".")
    check_choice("torchvision classification model", arch, torchvision.models.list_models(module=torchvision.models))
    enum = torchvision.models.get_model_weights(arch)
    members = [m.name for m in enum] + ["DEFAULT"]
    return arch, enum[check_choice(f"{arch} weights tag", tag or "DEFAULT", members)]


def _torchvision_entry(name: str) -> ModelEntry:
    arch, weights = _tv_weights(name.removeprefix("torchvision:"))
    source = f"torchvision {type(weights).__name__}.{weights.name} ({weights.url})"
    return _entry(name, arch, partial(load_torchvision, spec=name.removeprefix("torchvision:")), source=source,
                  license="BSD-3-Clause (torchvision); see the weights' recipe for the data's terms")


def _tv_io(weights: Any, t: Any = None) -> dict[str, Any]:
    t = t or weights.transforms()
    return {"canvas": int(t.crop_size[0]), "mean": tuple(t.mean), "std": tuple(t.std),
            "num_classes": len(weights.meta["categories"])}


def load_torchvision(entry: ModelEntry, *, spec: str) -> SourceModel:
    """torchvision weights from the torch hub cache, strictly loaded into the architecture built without them."""
    import torchvision

    from .resnet import strict_load, verified_hub_weights

    arch, weights = _tv_weights(spec)
    path, sha = verified_hub_weights(weights.url, f"pretrained weights of {entry.name}", entry.name)
    transforms = weights.transforms()
    io = _tv_io(weights, transforms)
    module = torchvision.models.get_model(arch, weights=None, num_classes=io["num_classes"])
    strict_load(module, load_file(path), entry.name, path)
    categories = list(weights.meta["categories"])
    return _finish(entry.name, module, **io, class_names=categories, provenance={
        "source": "torchvision", "weights": f"{type(weights).__name__}.{weights.name}", "source_file": str(path),
        "sha256": sha, "eval_resize": transforms.resize_size[0], "interpolation": transforms.interpolation.value})


# -------------------------------------------------------------------------------------------------- file


@dataclass(frozen=True)
class Architecture:
    """An architecture without weights, and the input contract its weights were trained for."""

    label: str  # how the file: name spelled it
    build: Callable[[int | None], nn.Module]  # num_classes (None: the default head) -> randomly initialised module
    canvas: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _registry_archs() -> dict[str, str | Callable[[], Architecture]]:
    """Registry architecture -> the external arch it is, or a builder for the ones made here."""
    from .smallcnn import SmallCNN
    from .vvtq import TIMM_NAMES

    def smallcnn() -> Architecture:
        return Architecture("smallcnn", lambda k: SmallCNN(num_classes=k or 100), 64, IMAGENET_MEAN, IMAGENET_STD)

    def lite(variant: int) -> Callable[[], Architecture]:
        from .efficientnet_lite import TF_MEAN, TF_STD, build_timm

        def build(k: int | None) -> nn.Module:
            module = build_timm(variant)
            if k is not None and k != module.num_classes:
                module.reset_classifier(k)
            return module
        return lambda: Architecture(f"efficientnet_lite{variant}", build, 224, TF_MEAN, TF_STD)

    archs: dict[str, str | Callable[[], Architecture]] = {
        f"resnet{d}": f"torchvision:resnet{d}" for d in (18, 34, 50)}
    archs.update({arch: f"timm:{name}" for arch, name in TIMM_NAMES.items()})
    archs.update({f"efficientnet_lite{v}": lite(v) for v in (0, 1, 2)})
    archs["smallcnn"] = smallcnn
    return archs


def resolve_arch(arch: str) -> Architecture:
    """The architecture a ``file:`` name's ``arch=`` names, without any weights."""
    if arch.startswith("timm:"):
        import timm

        timm_name = arch.removeprefix("timm:")
        if not timm.is_model(timm_name.split(".", 1)[0]):
            raise UnknownNameError("timm architecture", timm_name, timm.list_models())

        def build(k: int | None) -> nn.Module:
            return timm.create_model(timm_name, pretrained=False, **({} if k is None else {"num_classes": k}))
        # the registered pretrained_cfg is what create_model attaches; building a network just to read it
        # (a ViT-L is seconds and GBs) only for models registered without one
        cfg = timm.models.get_pretrained_cfg(timm_name)
        io = _timm_io(build(None)) if cfg is None else _cfg_io(cfg.to_dict())
        return Architecture(arch, build, io["canvas"], io["mean"], io["std"])
    if arch.startswith("torchvision:"):
        import torchvision

        spec = arch.removeprefix("torchvision:")
        tv_arch = spec.partition(".")[0]
        check_choice("torchvision classification model", tv_arch,
                     torchvision.models.list_models(module=torchvision.models))
        # the weights tag, when given, only supplies the input size and normalisation; nothing is downloaded
        io = _tv_io(_tv_weights(spec)[1]) if "." in spec else {"canvas": 224, "mean": IMAGENET_MEAN,
                                                                      "std": IMAGENET_STD}
        return Architecture(arch, lambda k: torchvision.models.get_model(tv_arch, weights=None,
                                                                        **({} if k is None else {"num_classes": k})),
                            io["canvas"], io["mean"], io["std"])
    registry = _registry_archs()
    known = [*registry, "timm:<name>", "torchvision:<arch>[.<WEIGHTS>]"]
    target = registry[check_choice("architecture for file:", arch, known)]
    return resolve_arch(target) if isinstance(target, str) else target()


def _parse_file_name(name: str) -> tuple[Path, dict[str, str]]:
    body, options = split_options(name, FILE_OPTIONS)
    path = body.removeprefix("file:")
    if not path:
        raise SpecError(f"{name!r} names no file: write file:<path>?arch=<arch>")
    if "arch" not in options:
        raise SpecError(f"{name!r} does not say which architecture the file holds: add ?arch=<arch> "
                        "(timm:<name>, torchvision:<arch>[.<WEIGHTS>] or a registry arch such as resnet50)")
    if "num_classes" in options:
        _positive_int(name, "num_classes", options["num_classes"])
    check_choice("compression", options.get("compression", "unstated"), COMPRESSIONS)
    return Path(path).expanduser(), options


def _file_entry(name: str) -> ModelEntry:
    path, options = _parse_file_name(name)
    parent = options.get("parent")
    if parent is not None:
        from ._registry import get_entry

        get_entry(parent)  # an unknown parent is a typo: say so now, not in the report
    arch = options["arch"]
    return _entry(name, arch.split(":", 1)[-1].split(".", 1)[0], partial(load_checkpoint_file, path=path,
                                                                         options=options),
                  compression=options.get("compression", "unstated"), method="file", parent=parent,
                  source=f"checkpoint file {path} (arch {arch})", license="unknown (the file's owner)")


_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def _state_dict_of(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a saved state dict, unwrapped from a training checkpoint's container if need be."""
    notes = []
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            raise CheckpointError(f"{path} holds no state dict (top-level keys: {sorted(map(str, obj))[:8]}); save "
                                  "the weights with torch.save(model.state_dict(), path)")
        obj = obj[key]
        notes.append(f"state dict taken from the checkpoint's {key!r} entry")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors ({type(obj).__name__}); save the weights "
                              "with torch.save(model.state_dict(), path), not the pickled module")
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k.removeprefix(prefix): v for k, v in obj.items()}
            notes.append(f"wrapper prefix {prefix!r} removed from every key")
    return obj, notes


def _head_hint(shapes: list[tuple[str, tuple, tuple]]) -> str:
    """Suggest num_classes=K when the only wrong shapes are a head whose leading size is K."""
    leading = {file[0] for _, file, _ in shapes if file}
    if len(leading) == 1 and all(len(file) in (1, 2) for _, file, _ in shapes):
        k = leading.pop()
        return f"Only the head differs: the file's classifier is {k}-way; add &num_classes={k} to the name."
    return ""


def strict_load_file(module: nn.Module, sd: dict[str, torch.Tensor], name: str, arch: str) -> None:
    """``load_state_dict(strict=True)`` after a key/shape diff whose error names every kind of mismatch and the fix."""
    _checkpoints.strict_load(module, sd, f"{name}: the file does not fit arch={arch}",
                             lambda shapes: _head_hint(shapes) or (
                                 "Pass the architecture the file was saved from (arch=timm:<name>, "
                                 "arch=torchvision:<arch> or a registry arch such as resnet50)."))


def load_checkpoint_file(entry: ModelEntry, *, path: Path, options: dict[str, str]) -> SourceModel:
    """A state-dict file loaded strictly into its stated architecture; sparsity and bits measured, file hashed."""
    if not path.is_file():
        where = path.absolute()  # a relative path is read from the working directory: show which one
        raise MissingFileError(f"checkpoint of {entry.name}", str(where), "wherever you saved it (a relative path in "
                               "the name is read from the working directory)", str(where.parent))
    arch = resolve_arch(options["arch"])
    k = int(options["num_classes"]) if "num_classes" in options else None
    module = arch.build(k)
    sd, notes = _state_dict_of(load_file(path), path)
    strict_load_file(module, sd, entry.name, options["arch"])
    num_classes = k or _head_width(module, 1000)
    return _finish(entry.name, module, canvas=arch.canvas, mean=arch.mean, std=arch.std, num_classes=num_classes,
                   provenance={"source": "file", "arch": options["arch"], "source_file": str(path.resolve()),
                               "sha256": sha256_of(path), "file_bytes": path.stat().st_size,
                               "compression_stated": entry.compression, "load_notes": notes})


def _head_width(module: nn.Module, default: int) -> int:
    """The K of a built classifier: timm states it; otherwise the last Linear's output width."""
    if isinstance(getattr(module, "num_classes", None), int):
        return module.num_classes
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else default


# -------------------------------------------------------------------------------------- register_module


def register_module(name: str, module: nn.Module, *, mean: tuple[float, float, float],
                    std: tuple[float, float, float], canvas: int = 224, num_classes: int = 1000,
                    compression: str = "dense", parent: str | None = None,
                    class_names: list[str] | None = None) -> ModelEntry:
    """Register an in-memory classifier so ``create_model(name)`` (and a ``RunSpec`` naming it) returns it.

    Only for runners in this process (the serial runner, ``runs.run``): a worker process or a cluster
    job has no such name. The module is frozen (eval mode, no gradients) and checked now: a
    ``[2, 3, canvas, canvas]`` batch must give ``[2, num_classes]`` logits. Registering a name again
    replaces the earlier module; registry names cannot be replaced. Results are stored by run id,
    which depends on the name only: give changed weights a new tag, or a stored result is reused.

    Args:
        name: ``"<arch>/<tag>"``, e.g. ``"mynet/pruned-70"``.
        module: maps normalised images ``[B, 3, canvas, canvas]`` to logits ``[B, num_classes]``.
        mean, std: the per-channel normalisation the module was trained with, on [0, 1] pixels.
        canvas: the input resolution (the prompt's frame size).
        num_classes: K, the width of the source logits.
        compression: one of dense, unstructured, structured, quantization, unstated.
        parent: the dense counterpart's model name, if any.
        class_names: the K source class names (ImageNet's when K is 1000 and none are given).
    """
    arch, _, tag = name.partition("/")
    if not arch or not tag or ":" in name:
        raise SpecError(f"register_module names are '<arch>/<tag>' without a colon, got {name!r}")
    if not isinstance(module, nn.Module):
        raise SpecError(f"register_module({name!r}): module must be a torch.nn.Module, got {type(module).__name__}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise SpecError(f"register_module({name!r}): mean and std need 3 channel values, std > 0; got {mean}, {std}")
    check_choice("compression", compression, COMPRESSIONS)
    existing = _ENTRIES.get(name)
    if existing is not None and existing.method != REGISTERED_METHOD:
        raise SpecError(f"{name!r} is a registry model and cannot be replaced; register under another tag")
    if parent is not None:
        from ._registry import get_entry

        get_entry(parent)

    def load(entry: ModelEntry) -> SourceModel:
        return _finish(name, module, canvas=canvas, mean=mean, std=std, num_classes=num_classes,
                       class_names=class_names, provenance={"source": "register_module",
                                                            "module_class": type(module).__qualname__,
                                                            "compression_stated": compression})

    entry = ModelEntry(name=name, arch=arch, compression=compression, method=REGISTERED_METHOD, loader=load,
                       parent=parent, source=f"in-memory {type(module).__qualname__} (register_module)",
                       license="unknown (the caller's module)")
    load(entry)  # freezes and checks the output now, before any run can name it
    _ENTRIES[name] = entry
    return entry


def unregister_module(name: str) -> None:
    """Forget a ``register_module`` name (registry models cannot be removed)."""
    entry = _ENTRIES.get(name)
    if entry is None or entry.method != REGISTERED_METHOD:
        raise SpecError(f"{name!r} was not registered with register_module")
    del _ENTRIES[name]


for _prefix in PREFIXES:
    register_resolver(_prefix, external_entry)
