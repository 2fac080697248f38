"""Profiles: the grid each notebook runs, at three sizes. Smoke only shrinks; it never changes code paths.

- ``smoke``: offline, CPU, minutes. The study in miniature: the small CNN pretrained here on the
  generated 100-class task stands in for ImageNet models; its magnitude-pruned and fake-quantized
  versions stand in for the compressed checkpoints (each paper family maps to a subset of pruning
  levels); targets are generated tasks and scikit-learn's digits; 6 epochs, one seed.
- ``quick``: real datasets and checkpoints, a subset sized for one Colab GPU in about an hour:
  CIFAR-10 and OxfordPets, dense vs AC/DC-90 ResNet-50 and DeiT-T 32 vs 3 bit, N in {1, 10, full}
  (Pets: {1, 10, 100}), ILM and FLM, one seed, 30 epochs evaluated every 10.
- ``paper``: the paper's full grid (8 datasets, N in {1, 2, 5, 10, 20, 50, 100, full}, 3 seeds, 100
  epochs); about 15k runs: use ``runner="submitit"`` on a cluster.

A notebook calls ``settings(section, profile, **overrides)``; ``None`` overrides keep the profile's
value, unknown names raise.
"""

from __future__ import annotations

from typing import Any

from .config import SHOTS_GRID
from .errors import SpecError, check_choice

PROFILES = ("smoke", "mini", "quick", "paper")
PAPER_DATASETS = ("cifar10", "svhn", "gtsrb", "dtd", "flowers102", "oxford_pets", "eurosat", "caltech101")
SMOKE_DATASETS = ("synth_shapes", "digits")
MINI_DATASETS = ("mnist", "fashion_mnist")
LITE0 = "efficientnet_lite0"
LT_LEVELS = ("79.122", "62.575", "49.35", "38.793", "30.407", "23.807", "18.664", "14.671", "11.571")

#: family -> (dense model, compressed models), per profile. The smoke profile reuses the small CNN's
#: pruning levels for every sparse family, so their runs are shared.
SPARSE_FAMILIES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "paper": {
        "gmp-r18": ("resnet18/dense", ("resnet18/gmp",)),
        "gmp-r34": ("resnet34/dense", ("resnet34/gmp",)),
        "acdc": ("resnet50/dense", ("resnet50/acdc-80", "resnet50/acdc-90", "resnet50/acdc-98")),
        "rigl": ("resnet50/dense", ("resnet50/rigl-80", "resnet50/rigl-90", "resnet50/rigl-95")),
        "lt": ("resnet50/dense", tuple(f"resnet50/lt-{s}" for s in LT_LEVELS)),
    },
    "quick": {
        "acdc": ("resnet50/dense", ("resnet50/acdc-90",)),
    },
    "smoke": {
        "gmp-r18": ("smallcnn/dense", ("smallcnn/prune-80", "smallcnn/prune-90")),
        "acdc": ("smallcnn/dense", ("smallcnn/prune-80", "smallcnn/prune-90", "smallcnn/prune-95")),
        "rigl": ("smallcnn/dense", ("smallcnn/prune-80", "smallcnn/prune-90", "smallcnn/prune-95")),
        "lt": ("smallcnn/dense", ("smallcnn/prune-80", "smallcnn/prune-90", "smallcnn/prune-95")),
    },
    # Real ImageNet weights. `prune-50-recovered` is pruned gradually and recovered by distillation here
    # (models/recovery.py), the paper's kind of sparse model; `prune-50` is the same sparsity one-shot, without
    # recovery: the damaged contrast (agreements with the dense model in docs/models.md). Both are graded on
    # Table 1's magnitude-pruning row (GMP). The other compressed Lite0 models are in the agreement study's
    # larger grid (`python -m vpcost_utils.agreement_study`).
    "mini": {
        "lite0-recovered": (f"{LITE0}/dense", (f"{LITE0}/prune-50-recovered",)),
        "lite0-magnitude": (f"{LITE0}/dense", (f"{LITE0}/prune-50",)),
    },
}

QUANT_FAMILIES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "paper": {
        "deit_tiny": ("deit_tiny/fp32", ("deit_tiny/w4a4", "deit_tiny/w3a3", "deit_tiny/w2a2")),
        "swin_tiny": ("swin_tiny/fp32", ("swin_tiny/w4a4", "swin_tiny/w3a3", "swin_tiny/w2a2")),
    },
    "quick": {"deit_tiny": ("deit_tiny/fp32", ("deit_tiny/w3a3",))},
    "smoke": {"smallcnn": ("smallcnn/dense", ("smallcnn/w8a8", "smallcnn/w4a4", "smallcnn/w3a3", "smallcnn/w2a2"))},
    # Google's own int8 EfficientNet-Lite0 (a published quantized model), graded on the VVTQ row.
    "mini": {"lite0-int8": (f"{LITE0}/dense", (f"{LITE0}/int8-tflite",))},
}

_COMMON: dict[str, dict[str, Any]] = {
    "paper": {"datasets": PAPER_DATASETS, "shots": SHOTS_GRID, "methods": ("rlm", "flm", "ilm"), "seeds": (0, 1, 2),
              "epochs": 100, "eval_every": 10, "substitute": False, "canvas": None, "max_test": None,
              # N above every class (Flowers102 N >= 20, DTD N = 50) runs on all images at N's batch size, as
              # the paper did; the other profiles drop those cells (they are the full-data run).
              "oversized": "paper"},
    "quick": {"datasets": ("cifar10", "oxford_pets"), "shots": (1, 10, None), "methods": ("flm", "ilm"),
              "seeds": (0,), "epochs": 30, "eval_every": 10, "substitute": True, "canvas": None, "max_test": None},
    "smoke": {"datasets": SMOKE_DATASETS, "shots": (2, 10, None), "methods": ("rlm", "flm", "ilm"), "seeds": (0,),
              "epochs": 6, "eval_every": 3, "substitute": False, "canvas": None, "max_test": None},
    # 2 CPU cores: a 128-px canvas (about 3x cheaper than 224), a fixed stratified 2,000-image test
    # subset shared by every run, 16 epochs evaluated once at the end, N up to 50 (the largest
    # budget a laptop affords over the whole grid; full-data MNIST is 60k images per epoch).
    "mini": {"datasets": MINI_DATASETS, "shots": (1, 10, 50), "methods": ("ilm",), "seeds": (0, 1, 2),
             "epochs": 16, "eval_every": 16, "substitute": False, "canvas": 128, "max_test": 2000},
}

_SECTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "sparse_transfer": {p: {"families": SPARSE_FAMILIES[p]} for p in PROFILES},
    # Mini: the int8 model at N in {1, 10} (the CPU budget did not stretch to its N=50 runs).
    "quantization": {p: {"families": QUANT_FAMILIES[p], "methods": ("ilm",),
                         **({"shots": (1, 10)} if p == "mini" else {})} for p in PROFILES},
    # Calibration is measured at the largest budget: full data; on the mini profile N=50 for the
    # sparse family and N=10 for the int8 model (its largest budget there).
    "calibration": {p: {"sparse_families": SPARSE_FAMILIES[p], "quant_families": QUANT_FAMILIES[p],
                        "shots": (50,) if p == "mini" else (None,), "quant_shots": (10,) if p == "mini" else None}
                    for p in PROFILES},
    "label_mapping": {
        "paper": {"dense": "resnet50/dense", "sparse": "resnet50/lt-14.671",
                  "datasets": ("oxford_pets", "dtd", "caltech101"),
                  "shots": (5,), "prompt_pair": ("resnet50/lt-11.571", "resnet50/lt-18.664", "resnet50/lt-49.35"),
                  "prompt_dataset": "caltech101", "quant_pair": ("deit_tiny/fp32", "deit_tiny/w2a2")},
        "quick": {"dense": "resnet50/dense", "sparse": "resnet50/acdc-90", "datasets": ("oxford_pets",), "shots": (5,),
                  "prompt_pair": ("resnet50/acdc-90",), "prompt_dataset": "oxford_pets",
                  "quant_pair": ("deit_tiny/fp32", "deit_tiny/w3a3")},
        "smoke": {"dense": "smallcnn/dense", "sparse": "smallcnn/prune-95", "datasets": SMOKE_DATASETS, "shots": (5,),
                  "prompt_pair": ("smallcnn/prune-90", "smallcnn/prune-95"), "prompt_dataset": "synth_shapes",
                  "quant_pair": ("smallcnn/dense", "smallcnn/w2a2")},
        "mini": {"dense": f"{LITE0}/dense", "sparse": f"{LITE0}/prune-50", "datasets": MINI_DATASETS, "shots": (5,),
                 "prompt_pair": (f"{LITE0}/prune-30", f"{LITE0}/prune-50"), "prompt_dataset": "mnist",
                 "quant_pair": (f"{LITE0}/dense", f"{LITE0}/int8-tflite")},
    },
    "clip": {
        # Dense = UPop's uncompressed COCO fine-tune (the paper's dense row); OpenAI's release is an extra row.
        # "VP" is ILM-VP's own CLIP baseline (single-tp-vp), the paper's most likely set-up; Bahng's is
        # methods=["vp", ...]. Class names: the fork's (GTSRB short labels, EuroSAT folder names, digits
        # for Caltech101 / Flowers102); None elsewhere = ours (clip/classnames.py).
        "paper": {"models": ("clip_vit_l14_336/upop-coco", "clip_vit_l14_336/upop-2x", "clip_vit_l14_336/upop-4x",
                             "clip_vit_l14_336/openai"),
                  "datasets": tuple(d for d in PAPER_DATASETS if d != "flowers102"),
                  "methods": ("single-tp-vp", "ilm-vp"), "class_names": "fork",
                  "paper_methods": {"single-tp-vp": "VP", "ilm-vp": "ILM-VP"},
                  "epochs": 10, "eval_every": 1, "paper_models": None, "paper_datasets": None},
        # quick: OpenAI's file (downloadable) as the dense model, so UPop-2x's labelled substitute can be built
        "quick": {"models": ("clip_vit_l14_336/openai", "clip_vit_l14_336/upop-2x"), "datasets": ("cifar10",),
                  "methods": ("ilm-vp",), "shots": (10, None), "epochs": 5, "eval_every": 5,
                  # OpenAI's model plays Table 2's dense column (else the table has no dense row and no drop)
                  "paper_models": {"clip_vit_l14_336/openai": "dense", "clip_vit_l14_336/upop-2x": "compressed_2x"},
                  "paper_datasets": None, "class_names": None, "paper_methods": None},
        # Stand-ins are compared with the paper's rows they play: the tiny dual encoder's dense and
        # pruned versions for CLIP and UPop-2x, the generated colours task (tinyclip knows colours, not
        # shapes) for CIFAR-10.
        "smoke": {"models": ("tinyclip/dense", "tinyclip/prune-50"), "datasets": ("synth_colours",),
                  "methods": ("vp", "ilm-vp"), "shots": (10, None), "epochs": 3, "eval_every": 3,
                  "paper_models": {"tinyclip/dense": "dense", "tinyclip/prune-50": "compressed_2x"},
                  "paper_datasets": {"synth_colours": "CIFAR-10"}, "class_names": None, "paper_methods": None},
        # No CLIP-like dual encoder is carried by the registries: the section stays on the smoke
        # profile's generated stand-ins (tiny dual encoder, colours task).
        "mini": {"models": ("tinyclip/dense", "tinyclip/prune-50"), "datasets": ("synth_colours",),
                 "methods": ("vp", "ilm-vp"), "shots": (10, None), "epochs": 3, "eval_every": 3, "seeds": (0,),
                 "paper_models": {"tinyclip/dense": "dense", "tinyclip/prune-50": "compressed_2x"},
                 "paper_datasets": {"synth_colours": "CIFAR-10"}, "class_names": None, "paper_methods": None},
    },
    "cross_modal": {
        "paper": {"models": ("resnet34/dense", "resnet34/gmp", "resnet50/dense", "resnet50/lt-11.571", "deit_tiny/fp32",
                             "deit_tiny/w4a4", "deit_tiny/w3a3", "deit_tiny/w2a2"),
                  "datasets": ("yelp_polarity", "imdb", "ag_news", "dbpedia_14", "splice"), "methods": ("max",),
                  "shots": (None,), "epochs": 100, "max_steps": 100_000, "max_train": None,
                  "table3_models": None, "table4_models": None, "paper_tasks": None},
        "quick": {"models": ("resnet50/dense", "resnet50/acdc-90"), "datasets": ("ag_news", "splice"),
                  "methods": ("max",), "shots": (None,), "epochs": 5, "max_steps": 5_000, "max_train": 20_000,
                  "table3_models": {"resnet50/dense": ("ResNet-50", "dense"),
                                    "resnet50/acdc-90": ("ResNet-50", "sparse")},
                  "table4_models": {}, "paper_tasks": None},
        "smoke": {"models": ("smallcnn/dense", "smallcnn/prune-90", "smallcnn/w3a3", "smallcnn/w2a2"),
                  "datasets": ("synth_text4", "synth_dna"), "methods": ("max",), "shots": (None,), "epochs": 2,
                  "max_steps": 300, "max_train": None,
                  "table3_models": {"smallcnn/dense": ("ResNet-50", "dense"),
                                    "smallcnn/prune-90": ("ResNet-50", "sparse"), "smallcnn/w3a3": ("DeiT-T", "3-bit")},
                  "table4_models": {"smallcnn/dense": 32, "smallcnn/w3a3": 3, "smallcnn/w2a2": 2},
                  "paper_tasks": {"synth_text4": "AG", "synth_dna": "Splice"}},
        # A real ImageNet backbone reprogrammed for the generated text and DNA tasks (the real text
        # sets are on the Hugging Face hub, out of reach offline).
        "mini": {"models": (f"{LITE0}/dense", f"{LITE0}/prune-50", f"{LITE0}/int8-tflite"), "seeds": (0,),
                 "datasets": ("synth_text4", "synth_dna"), "methods": ("max",), "shots": (None,), "epochs": 2,
                 "max_steps": 300, "max_train": None,
                 "table3_models": {f"{LITE0}/dense": ("ResNet-50", "dense"),
                                   f"{LITE0}/prune-50": ("ResNet-50", "sparse")},
                 "table4_models": {f"{LITE0}/dense": 32},
                 "paper_tasks": {"synth_text4": "AG", "synth_dna": "Splice"}},
    },
}
# CLIP's batch size and step cap: None keeps the paper's (batch 16, all steps); a rehearsal on a CPU sets them.
for _clip in _SECTIONS["clip"].values():
    _clip.update(batch_size=None, max_steps=None)
# Notebook 08 (beyond the paper): the hidden-cost report on one dense model and its compressed versions.
# Three seeds everywhere: the report's verdicts rest on intervals, and one seed has none.
_SECTIONS["your_model"] = {
    "paper": {"dense": "resnet50/dense", "compressed": ("resnet50/acdc-90", "resnet50/rigl-90"),
              "datasets": ("cifar10", "oxford_pets"), "shots": (1, 10, None), "holdout": 20},
    "quick": {"dense": "resnet50/dense", "compressed": ("resnet50/acdc-90",), "datasets": ("cifar10",),
              "shots": (1, 10, None), "seeds": (0, 1, 2), "holdout": 20},
    "smoke": {"dense": "smallcnn/dense", "compressed": ("smallcnn/prune-90", "smallcnn/w3a3"),
              "datasets": ("synth_shapes",), "shots": (2, 10), "seeds": (0, 1, 2), "holdout": 5},
    "mini": {"dense": f"{LITE0}/dense", "compressed": (f"{LITE0}/prune-30", f"{LITE0}/int8-tflite"),
             "datasets": ("mnist",), "shots": (1, 10), "holdout": 20},
}
# A fixed-width study (report.ReportConfig, sequential.py): off by default; a target half-width in accuracy points
# makes every cell run a pilot of `pilot_seeds` seeds and then as many as Stein's rule asks, at most `max_seeds`.
for _report in _SECTIONS["your_model"].values():
    _report.update(target_halfwidth=None, max_seeds=None, pilot_seeds=5)
SECTIONS = tuple(_SECTIONS)


def _check_type(name: str, value: Any, default: Any) -> None:
    """A notebook parameter must have the type of the profile's value (lists and tuples interchangeable)."""
    if default is None:  # "use the built-in default" settings accept any value of the right meaning
        return
    if isinstance(default, (list, tuple)):
        ok, expected = isinstance(value, (list, tuple)), "a list"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an int"
    else:
        ok, expected = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise SpecError(f"parameter {name!r} must be {expected} (like the profile's {default!r}), "
                        f"got {value!r} ({type(value).__name__})")


def settings(section: str, profile: str, **overrides: Any) -> dict[str, Any]:
    """The resolved settings of a notebook section: profile defaults, then non-None overrides."""
    check_choice("section", section, SECTIONS)
    check_choice("profile", profile, PROFILES)
    resolved = {**_COMMON[profile], **_SECTIONS[section][profile]}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in resolved:
            raise SpecError(f"{section!r} has no setting {name!r}; known settings: {sorted(resolved)}")
        _check_type(name, value, resolved[name])
        resolved[name] = value
    resolved["profile"] = profile
    return resolved
