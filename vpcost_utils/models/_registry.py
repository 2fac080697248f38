"""Model registry: a name such as ``resnet50/acdc-90`` turns into a verified, frozen source model.

A name is ``<arch>/<tag>``: the architecture, then the weights (``dense``, ``acdc-90``,
``w3a3``, ...). Each family file registers its entries at import (``models/__init__`` imports
them all, as timm does). An entry is metadata plus two callables: ``loader`` builds the real
network from its checkpoint (strictly, then asserts what the name claims), and ``substitute``
builds a clearly labelled stand-in when the real file cannot be had and the run asked for one.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UnknownNameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelEntry:
    """Metadata of one registered model; ``loader`` / ``substitute`` return a ``SourceModel``."""

    name: str  # "<arch>/<tag>"
    arch: str  # "resnet50", "deit_tiny", "smallcnn", ...
    compression: str  # "dense" | "unstructured" | "structured" | "quantization"
    method: str  # "dense", "gmp", "acdc", "rigl", "lt", "vvtq", "upop", "magnitude", "lsq", ...
    loader: Callable[..., SourceModel]
    sparsity: float | None = None  # fraction of zero weights over the layers the source counts
    bits: int | None = None  # weight = activation bit width for quantized entries
    parent: str | None = None  # dense counterpart's registry name
    source: str = ""  # URL, SparseZoo stub, torchvision weight enum, ...
    filename: str | None = None  # file expected under paths.checkpoints_dir()
    sha256: str | None = None
    top1: float | None = None  # published upstream ImageNet top-1 (%)
    license: str = ""
    obtainable: str = "yes"  # "yes" | "maybe" | "no" (private / gone)
    substitute: Callable[..., SourceModel] | None = None
    substitute_note: str = ""  # what the substitute is, in one line
    notes: str = ""
    # Models built here from ``parent`` on first use (minutes to an hour): None once the built file is cached,
    # else a sentence saying what first use will build. The preflight reads it instead of building.
    unbuilt: Callable[[], str | None] | None = None
    # "module:function" that writes this entry's file(s) with random weights in the published layout (the
    # rehearsal and the loader tests); a name, not an import, so a loader module never imports its fakes
    fake: str | None = None


@dataclass
class SourceModel:
    """A frozen source classifier ready for visual prompting.

    ``module`` maps a normalised image batch ``[B, 3, canvas, canvas]`` to source logits
    ``[B, num_classes]``; it is in eval mode with ``requires_grad`` off. ``provenance`` goes into
    every result record verbatim: name, whether it is a substitute, measured sparsity / bits.
    """

    name: str
    module: nn.Module
    canvas_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    class_names: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> SourceModel:
        self.module.to(device)
        return self


_ENTRIES: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add an entry; registering a name twice is a programming error."""
    if entry.name in _ENTRIES:
        raise ValueError(f"model {entry.name!r} is registered twice")
    if "/" not in entry.name:
        raise ValueError(f"model names are '<arch>/<tag>', got {entry.name!r}")
    _ENTRIES[entry.name] = entry
    return entry


EXTERNAL_FORMS = ("timm:<name>", "torchvision:<arch>.<WEIGHTS>", "file:<path>?arch=<arch>")
# name prefix -> resolver: entries made from the name itself (``timm:``, ``torchvision:``, ``file:``), registered
# by the module that builds them (``models.external``), so this module imports none of them.
_RESOLVERS: dict[str, Callable[[str], ModelEntry]] = {}


def register_resolver(prefix: str, resolve: Callable[[str], ModelEntry]) -> None:
    """Names starting with ``prefix`` get their entry from ``resolve(name)`` instead of the table."""
    _RESOLVERS[prefix] = resolve


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; an unknown name lists close matches.

    ``timm:``, ``torchvision:`` and ``file:`` names are not stored here: ``external`` makes their
    entry from the name itself (no weights read), so they work in any process.
    """
    if name in _ENTRIES:
        return _ENTRIES[name]
    for prefix, resolve in _RESOLVERS.items():
        if name.startswith(prefix):
            return resolve(name)
    if ":" in name:
        raise UnknownNameError("model source", name.split(":", 1)[0] + ":", list(_RESOLVERS))
    err = UnknownNameError("model", name, _ENTRIES)
    err.args = (f"{err.args[0]} Models outside the registry: {', '.join(EXTERNAL_FORMS)}.",)  # after the truncated list
    raise err


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _ENTRIES if fnmatch.fnmatch(n, pattern))


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm uses running statistics) and no gradients, as the reference does."""
    module.eval()
    module.requires_grad_(False)
    return module


def create_model(name: str, *, substitute: bool = False, device: str | torch.device = "cpu") -> SourceModel:
    """Build the model called ``name``, frozen and on ``device``.

    With ``substitute=False`` only the real checkpoint is acceptable and a missing file raises
    ``MissingFileError`` saying where to get it. With ``substitute=True`` the real file is still
    preferred; the labelled substitute is built only when the real one is missing, and its
    provenance says so (``provenance["substitute"]`` is the substitute's description).
    """
    from ..errors import MissingFileError

    entry = get_entry(name)
    try:
        model = entry.loader(entry)
        model.provenance.setdefault("substitute", False)
    except MissingFileError:
        if not substitute or entry.substitute is None:
            raise
        model = entry.substitute(entry)
        model.provenance["substitute"] = entry.substitute_note or True
    model.provenance.setdefault("name", name)
    freeze(model.module)
    return model.to(device)


def fingerprint(module: nn.Module) -> str:
    """A hash of every parameter and buffer of ``module``: what was computed from it (teacher logits, the linear
    probe's features) belongs to these weights, whatever their name."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
