"""What a rehearsal runs: each notebook's parameters, thinned so every model, dataset and method runs once.

Models and methods stay the profile's (``None``: the notebook takes the profile's value); what is
thinned is what only multiplies the same code path: one epoch, one seed (two where the report needs an
interval), the smallest N-shot budget and/or full data, small CLIP batches and step caps, and the
datasets, which are spread over the sections (every dataset of the profile is used by some section;
the cheapest backbones take the most datasets). ``coverage`` compares what ran with the full profile.
"""

from __future__ import annotations

from typing import Any

from ..config import RunSpec
from ..grids import profile_runs

#: Notebook parameters common to every training notebook of a rehearsal.
FAST = {"epochs": 1, "eval_every": 1, "seeds": [0]}
#: CLIP ViT-L/14@336 on a CPU: one image per step, one step.
CLIP_FAST = {"batch_size": 1, "max_steps": 1}
CROSSMODAL_FAST = {"max_steps": 2}

_PLANS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "01_sparse_transfer": {"datasets": ["cifar10"], "shots": [1, None]},
        "02_clip": {"shots": [None], **CLIP_FAST},
        "03_quantization": {"datasets": ["cifar10"], "shots": [1, None]},
        "04_cross_modal": {**CROSSMODAL_FAST},
        "05_calibration": {"datasets": ["cifar10"]},  # full-data runs shared with 01 and 03
        "06_label_mapping": {"shots": [1]},  # OxfordPets, the profile's
        "08_your_model": {"datasets": ["cifar10"], "shots": [1, None], "seeds": [0, 1], "holdout": 1},
    },
    "paper": {
        # Each dataset runs where it costs least: CIFAR-10 in 01, 02 and 05; the 10-class SVHN and EuroSAT
        # with the eight transformers in 03; OxfordPets in 06 (its prompt runs too); the 43- to 102-class
        # GTSRB, DTD, Flowers102 and Caltech101 with ResNet-18 in 08 (the report takes any models; the
        # paper's ResNet-50 AC/DC-90 and RigL-90 run in 01). Before this spread, 03 and 06 ran ResNet-50
        # and the transformers on every many-class set and the rehearsal took about 3 h.
        "01_sparse_transfer": {"datasets": ["cifar10"], "shots": [None]},
        "02_clip": {"datasets": ["cifar10"], "shots": [None], **CLIP_FAST},
        "03_quantization": {"datasets": ["svhn", "eurosat"], "shots": [1]},
        "04_cross_modal": {**CROSSMODAL_FAST},
        "05_calibration": {"datasets": ["cifar10"]},
        "06_label_mapping": {"shots": [1], "datasets": ["oxford_pets"], "prompt_dataset": "oxford_pets"},
        "08_your_model": {"dense": "resnet18/dense", "compressed": ["resnet18/gmp"],
                          "datasets": ["gtsrb", "dtd", "flowers102", "caltech101"], "shots": [1], "seeds": [0, 1],
                          "holdout": 1},
    },
}

#: The CI-sized subset (``tests/test_rehearse.py``): the smallest family of each section, on CIFAR-10, splice and
#: AG News.
_R18 = {"gmp-r18": ["resnet18/dense", ["resnet18/gmp"]]}
_DEIT = {"deit_tiny": ["deit_tiny/fp32", ["deit_tiny/w2a2"]]}
CI_PLAN: dict[str, dict[str, Any]] = {
    # full data here (its ILM runs are 05's too); the N-shot path runs in 03, 06 and 08
    "01_sparse_transfer": {"families": _R18, "datasets": ["cifar10"], "shots": [None], "methods": ["rlm", "ilm"]},
    "03_quantization": {"families": _DEIT, "datasets": ["cifar10"], "shots": [1]},
    # AG News: the Hugging Face `datasets` cache and the BERT tokenizer path; splice: UCI and the char tokenizer
    "04_cross_modal": {"models": ["resnet18/gmp"], "datasets": ["splice", "ag_news"], **CROSSMODAL_FAST},
    "05_calibration": {"sparse_families": _R18, "quant_families": _DEIT, "datasets": ["cifar10"], "methods": ["ilm"]},
    "06_label_mapping": {"dense": "resnet18/dense", "sparse": "resnet18/gmp", "quant_pair": ["deit_tiny/fp32",
                         "deit_tiny/w2a2"], "prompt_pair": ["resnet18/gmp"], "prompt_dataset": "cifar10",
                         "datasets": ["cifar10"], "shots": [1]},
    "07_summary": {},
    "08_your_model": {"dense": "resnet18/dense", "compressed": ["resnet18/gmp"], "datasets": ["cifar10"],
                      "shots": [1], "seeds": [0, 1], "holdout": 1},
}
CI_PROFILE = "paper"

NO_TRAINING = ("07_summary",)


def notebook_parameters(profile: str, *, ci: bool = False) -> dict[str, dict[str, Any]]:
    """Notebook name -> papermill parameters of the rehearsal (every notebook of ``artifacts.NOTEBOOKS``)."""
    from ..nb.artifacts import NOTEBOOKS

    if ci:
        plan = CI_PLAN
    elif profile in _PLANS:
        plan = _PLANS[profile]
    else:
        raise ValueError(f"no rehearsal plan for profile {profile!r}; known: {sorted(_PLANS)} (smoke and mini "
                         "already run on a CPU: use `make reproduce`)")
    from ..nb.reproduce import NOTEBOOK_DIR, declared_parameters

    out = {}
    for name in NOTEBOOKS:
        if ci and name not in plan:
            continue
        declared = declared_parameters(NOTEBOOK_DIR / f"{name}.ipynb")
        fast = {k: v for k, v in FAST.items() if k in declared and name not in NO_TRAINING}
        out[name] = {**fast, **plan.get(name, {})}
    return out


def full_runs(profile: str) -> list[RunSpec]:
    """Every run of the full profile, once (``grids.profile_runs``): what the rehearsal's coverage is measured on."""
    return [s for section in profile_runs(profile).values() for s in section]


def required(profile: str) -> dict[str, set[str]]:
    """Every model, dataset, method and task of the full profile's grid (what a rehearsal must cover)."""
    specs = full_runs(profile)
    return {"models": {s.model for s in specs}, "datasets": {s.dataset for s in specs},
            "methods": {f"{s.task}:{s.method}" for s in specs}}


def exercised(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The same sets, read from a rehearsal's run records."""
    specs = [r["spec"] for r in records]
    return {"models": {s["model"] for s in specs}, "datasets": {s["dataset"] for s in specs},
            "methods": {f"{s['task']}:{s['method']}" for s in specs}}


def uncovered(profile: str, records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What the full profile runs and the rehearsal did not, by kind (empty lists: all covered)."""
    need, got = required(profile), exercised(records)
    return {kind: sorted(need[kind] - got[kind]) for kind in need}
