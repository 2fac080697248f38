"""What the paper's own code loaded from each published checkpoint: ``authors_load(name)``.

The authors' fork of ILM-VP (``landskape-ai/Reprogram_LT``; main ``2553bad``, branch ``upload``
``4f94a92``) loads some files with ``load_state_dict(..., strict=False)`` and no key conversion. With
``strict=False`` a file whose names do not match the network loads *nothing* and raises nothing: the
network keeps its random initialisation. ``authors_load`` replays each family's loading code of the
fork (our code, same steps) on the file our registry uses and counts what really arrived.

Per family (the fork's code that was read; refs are ``branch:path:lines``):

* GMP ResNet-18/34 (SparseZoo): ``main:experiments/cnn/ilm_vp.py:197-210`` builds
  ``torchvision.models.resnet{18,34}()`` (random), ``torch.load(f"{dir}/resnet{18,34}_checkpoint.pth")``,
  ``load_state_dict(checkpoint["state_dict"], strict=False)``. Same in ``linear_probing.py:179-193`` and
  ``upload:experiments/cnn/look_at_calibration.py:283-296``. No key conversion exists in any commit of
  the fork (``git log -S`` for ``sections`` / ``input.conv`` / ``classifier.fc`` finds none).
* Lottery tickets: ``main:experiments/cnn/ilm_vp.py:67-99`` (``get_pruned_model``) + ``211-215``: mask x
  weight for every key of the mask file (``"model."`` removed by ``str.replace``), then every *other*
  key copied, then a strict load. The "other key" test compares the unstripped key with the stripped
  ones, so with a ``model.`` prefix every masked weight is overwritten by its unmasked value: the
  report counts those (``unmasked``).
* AC/DC, RigL: the fork's HEAD has no loader. Commits ``447058c``..``c1d1a73`` (July 2023, removed in
  ``d921fda``) had ``--network acdc`` / ``rigL``, both routed to the lottery-ticket loader above, i.e. to
  files named ``resnet50_dyn4_{k}_checkpoint.pth`` + ``_mask.pth``. How the published single files were
  turned into that pair is not in the repository: **unconfirmed**, nothing is replayed.
* VVTQ DeiT-T / Swin-T: ``upload:experiments/cnn/look_at_calibration.py:196-253`` builds VVTQ's network,
  ``torch.load(...)["state_dict"]``, removes ``"module."`` and loads strictly; VVTQ's forward then runs every
  layer at its stored ``nbits``. Only in the ``upload`` branch (main has no ViT code).
* UPop CLIP: ``main:experiments/ilm_clip.py:69-75`` -> ``clip/clip.py:129-153`` (``evaluate=True``: no load
  in ``build_model``, ``clip/model.py:777-818``) -> ``prune_if_compressed`` (``clip/model.py:693-750``), which
  resizes every block to the file's shapes and then loads ``strict=False``. Read, not replayed: that needs
  UPop's own CLIP class (momentum encoders, queues), which we do not rebuild.
* Dense ResNets: torchvision's weight enums (``main:experiments/cnn/ilm_vp.py:162-168``), a strict load of
  the same file as ours.

Files are read with our weights-only ``load_file`` (the fork uses plain ``torch.load``; the tensors are
the same). Nothing is ever downloaded here: a file that is not on disk is reported as not present.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import paths
from ._checkpoints import load_file
from ._registry import get_entry, list_models

__all__ = ["AuthorsLoad", "LoadReport", "authors_load", "compare"]

FORK = "landskape-ai/Reprogram_LT"
SPARSE_METHODS = ("gmp", "acdc", "rigl", "lt")
_GMP = f"{FORK} main:experiments/cnn/ilm_vp.py:197-210 (torchvision resnet, ['state_dict'], strict=False)"
_LT = f"{FORK} main:experiments/cnn/ilm_vp.py:67-99,211-215 (mask x weight, 'model.' replaced, strict=True)"
_NO_LOADER = (f"{FORK}: no loader at HEAD; 447058c..c1d1a73 route it to the lottery-ticket loader, which reads "
              "resnet50_dyn4_{k}_checkpoint.pth + _mask.pth; the conversion of the published file is unpublished")
_VVTQ = f"{FORK} upload:experiments/cnn/look_at_calibration.py:196-253 (['state_dict'], 'module.' removed, strict)"
_UPOP = (f"{FORK} main:experiments/ilm_clip.py:69-75 + clip/model.py:693-750 (blocks resized to the file, "
         "strict=False); not replayed")
_DENSE = f"{FORK} main:experiments/cnn/ilm_vp.py:162-168 (torchvision weights enum, strict)"
_SHORT = {"gmp": "strict=False, no key conversion", "lt": "mask x weight, strict",
          "acdc": "none in the fork (unconfirmed)", "rigl": "none in the fork (unconfirmed)"}


@dataclass
class LoadReport:
    """What one ``load_state_dict`` call of the fork did with one file.

    ``loaded`` counts file tensors that matched a network tensor by name and shape and ended up in the
    network the fork then used; it is 0 when the call raised (the run would have stopped there) and
    None when the fork's loading was not replayed (``replayed=False``).
    """

    name: str
    loader: str  # the fork's code path
    replayed: bool  # the fork's steps were replayed on the file (False: unconfirmed or not rebuilt)
    file: str | None = None
    present: bool = False
    in_file: int | None = None  # tensors in the dict the fork hands to load_state_dict
    loaded: int | None = None
    network: int | None = None  # tensors of the network being loaded
    missing: list[str] = field(default_factory=list)  # network tensors the file did not fill (random init kept)
    unexpected: list[str] = field(default_factory=list)  # file tensors with no network tensor of that name
    mismatched: list[str] = field(default_factory=list)  # same name, other shape (raises even with strict=False)
    unmasked: int = 0  # lottery tickets: masked weights overwritten by their unmasked values
    error: str | None = None  # what the fork's call raised, if anything
    note: str = ""


@dataclass
class AuthorsLoad:
    """``module`` is the network the fork's code produced (None when not replayed or it raised)."""

    module: nn.Module | None
    report: LoadReport


# ------------------------------------------------------------------------------------------ replaying


def _tensors(sd: Any) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)} if isinstance(sd, dict) else {}


def _load_like_fork(module: nn.Module, sd: dict[str, torch.Tensor], strict: bool, report: LoadReport) -> bool:
    """``module.load_state_dict(sd, strict)`` as the fork calls it, recording what matched; True if it ran."""
    own = module.state_dict()
    report.in_file, report.network = len(sd), len(own)
    report.missing = sorted(own.keys() - sd.keys())
    report.unexpected = sorted(sd.keys() - own.keys())
    report.mismatched = sorted(k for k in own.keys() & sd.keys() if own[k].shape != sd[k].shape)
    try:
        module.load_state_dict(sd, strict=strict)
    except RuntimeError as exc:  # torch raises on shape mismatches even with strict=False
        report.error, report.loaded = f"load_state_dict raised: {' '.join(str(exc).split())[:300]}", 0
        return False
    report.loaded = len(own.keys() & sd.keys()) - len(report.mismatched)
    return True


def _state_dict_entry(obj: Any, key: str, report: LoadReport) -> dict[str, torch.Tensor] | None:
    """``obj[key]`` as the fork indexes it; a missing key is the KeyError the fork would raise."""
    if not isinstance(obj, dict) or key not in obj:
        found = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        report.error, report.loaded = f"KeyError: {key!r} (the file holds {found})", 0
        return None
    return _tensors(obj[key])


def _gmp(entry: Any, path: Path, report: LoadReport) -> nn.Module | None:
    from .resnet import build_torchvision

    module = build_torchvision(entry.arch)
    sd = _state_dict_entry(load_file(path), "state_dict", report)
    if sd is None or not _load_like_fork(module, sd, strict=False, report=report):
        return None
    if report.loaded == 0:
        report.note = "nothing matched: the network is torchvision's random initialisation"
    return module


def _fork_lottery_dict(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                       report: LoadReport) -> dict[str, torch.Tensor]:
    """The fork's ``get_pruned_model`` steps, including its prefix test on the unstripped key."""
    new: dict[str, torch.Tensor] = {}
    for name in masks:
        new[name.replace("model.", "")] = masks[name] * weights[name]
    masked = set(new)
    for key, value in weights.items():
        if key not in new:  # the unstripped key: with a "model." prefix this is always true
            stripped = key.replace("model.", "")
            report.unmasked += stripped in masked
            new[stripped] = value
    return new


def _lottery(entry: Any, path: Path, report: LoadReport) -> nn.Module | None:
    from .resnet import build_torchvision, lt_mask_filename

    mask_path = path.with_name(lt_mask_filename(path.name))
    if not mask_path.exists():
        report.present, report.note = False, f"mask file {mask_path.name} not present"
        return None
    weights, masks = _tensors(load_file(path)), _tensors(load_file(mask_path))
    try:
        sd = _fork_lottery_dict(weights, masks, report)
    except KeyError as exc:
        report.error, report.loaded = f"KeyError: {exc} (a mask key with no weight of the same name)", 0
        return None
    module = build_torchvision(entry.arch)
    if not _load_like_fork(module, sd, strict=True, report=report):
        return None
    if report.unmasked:
        report.note = f"{report.unmasked} masked weights were overwritten by their unmasked values"
    return module


def _vvtq(entry: Any, path: Path, report: LoadReport) -> nn.Module | None:
    from .lsq import vvtq_quantizers
    from .vvtq import build_vvtq

    sd = _state_dict_entry(load_file(path), "state_dict", report)
    if sd is None:
        return None
    module = build_vvtq(entry.arch, entry.bits)
    if not _load_like_fork(module, {k.replace("module.", ""): v for k, v in sd.items()}, True, report):
        return None
    for q in vvtq_quantizers(module).values():
        q.adopt_stored_bits()  # VVTQ's forward reads every layer's width from its stored nbits
    return module


def _dense(entry: Any, path: Path, report: LoadReport) -> nn.Module | None:
    from .resnet import build_torchvision

    module = build_torchvision(entry.arch)
    return module if _load_like_fork(module, _tensors(load_file(path)), strict=True, report=report) else None


def _count_only(_entry: Any, path: Path, report: LoadReport) -> None:
    """Families whose loading is not replayed: count the file's tensors, load nothing."""
    from ._layouts import unwrap_container

    report.in_file = len(unwrap_container(load_file(path), str(path)))
    return None


# method -> (the fork's code path, replayed?, replay function)
_FAMILIES = {
    "gmp": (_GMP, True, _gmp),
    "lt": (_LT, True, _lottery),
    "acdc": (_NO_LOADER, False, _count_only),
    "rigl": (_NO_LOADER, False, _count_only),
    "vvtq": (_VVTQ, True, _vvtq),
    "upop": (_UPOP, False, _count_only),
}
_DENSE_PAPER = ("resnet18/dense", "resnet34/dense", "resnet50/dense", "clip_vit_l14_336/upop-coco")


def _family(name: str) -> tuple[str, bool, Any] | None:
    entry = get_entry(name)
    if name == "clip_vit_l14_336/upop-coco":
        return _FAMILIES["upop"]
    if name in _DENSE_PAPER:
        return _DENSE, True, _dense
    return _FAMILIES.get(entry.method)


def _file(name: str) -> Path:
    """Where the file of ``name`` lies when present; never downloads."""
    entry = get_entry(name)
    path = paths.checkpoints_dir() / entry.filename
    if entry.method == "dense" and entry.arch.startswith("resnet") and not path.exists():
        from .resnet import torch_hub_checkpoints

        return torch_hub_checkpoints() / entry.filename
    return path


def authors_load(name: str) -> AuthorsLoad:
    """Load ``name``'s published file exactly the way the authors' fork does; report what arrived.

    Raises ``ValueError`` for a name that is not one of the paper's checkpoints (no fork loader to replay).
    A file that is not on disk gives ``report.present = False`` and no module.
    """
    family = _family(name)
    if family is None:
        raise ValueError(f"{name} is not one of the paper's checkpoints; the authors' code never loaded it")
    loader, replayed, replay = family
    path = _file(name)
    report = LoadReport(name=name, loader=loader, replayed=replayed, file=str(path), present=path.exists())
    if not report.present:
        return AuthorsLoad(None, report)
    module = replay(get_entry(name), path, report)
    if module is not None:
        module.eval()
    return AuthorsLoad(module, report)


# ----------------------------------------------------------------------------------------- comparing


def _ours(name: str) -> tuple[int | None, str]:
    """Tensors our (strict) loader put into the network, or None and the reason it refused."""
    from ._registry import create_model

    try:
        return len(create_model(name).module.state_dict()), ""
    except Exception as exc:  # a refused file is a result here, not a failure of the table
        return None, f"{type(exc).__name__}: {str(exc)[:160]}"


def compare(models: Iterable[str]) -> Any:
    """One row per sparse paper checkpoint among ``models``: tensors loaded by the authors' code vs ours.

    When ``models`` holds none (the smoke and mini profiles use models made here), every sparse paper
    checkpoint of the registry is listed, so the table still says which files are on disk.
    """
    import pandas as pd

    names = [m for m in models if get_entry(m).method in SPARSE_METHODS]
    names = names or [n for n in list_models() if get_entry(n).method in SPARSE_METHODS]
    rows = []
    for name in names:
        report = authors_load(name).report
        loader = _SHORT[get_entry(name).method]
        if not report.present:
            rows.append({"model": name, "authors' loader": loader, "file": "file not present", "tensors in file": None,
                         "loaded by authors' code": None, "loaded by ours": None, "note": report.note})
            continue
        ours, why = _ours(name)
        authors = report.loaded if report.replayed else "not replayed"
        note = "; ".join(x for x in (report.error, report.note, why) if x)
        rows.append({"model": name, "authors' loader": loader, "file": Path(report.file).name,
                     "tensors in file": report.in_file,
                     "loaded by authors' code": authors, "loaded by ours": ours, "note": note})
    return pd.DataFrame(rows)
