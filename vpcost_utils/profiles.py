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

Every profile and section is typed, frozen configuration: one ``Common`` per profile (what its sections
share) and one section dataclass per notebook section and profile (what differs; a common field left
``None`` takes the profile's value). One module holds them all, not one per section or profile, because
the grids are read side by side: a reader compares the smoke, mini, quick and paper rows of one section,
and every entry point (``reproduce``, ``plan``, ``sweep``, ``rehearse``, the report, the notebooks)
reads them through one function. A notebook calls ``settings(section, profile, **overrides)``: the
profile's values with the overrides applied, each checked against the field's declared type (``None``
keeps the profile's value, unknown names raise).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

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
    # (built/distill.py), the paper's kind of sparse model; `prune-50` is the same sparsity one-shot, without
    # recovery: the damaged contrast (agreements with the dense model in docs/models.md). Both are graded on
    # Table 1's magnitude-pruning row (GMP). The other compressed Lite0 models are in the agreement study's
    # larger grid (`python -m vpcost_utils.studies.agreement_study`).
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

Families = dict[str, tuple[str, tuple[str, ...]]]  # family -> (dense model, compressed models)
Shots = tuple[int | None, ...]  # None = full data


@dataclass(frozen=True)
class Common:
    """What every section of one profile runs unless the section says otherwise."""

    datasets: tuple[str, ...]
    shots: Shots
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    eval_every: int
    substitute: bool
    canvas: int | None = None
    max_test: int | None = None
    oversized: str | None = None


@dataclass(frozen=True)
class Section:
    """A notebook section on one profile; a common field left ``None`` takes the profile's ``Common`` value."""

    datasets: tuple[str, ...] | None = None
    shots: Shots | None = None
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    epochs: int | None = None
    eval_every: int | None = None


@dataclass(frozen=True)
class SparseTransfer(Section):
    families: Families = field(default_factory=dict)


@dataclass(frozen=True)
class Quantization(Section):
    families: Families = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration(Section):
    sparse_families: Families = field(default_factory=dict)
    quant_families: Families = field(default_factory=dict)
    quant_shots: Shots | None = None  # None: the quantized families use ``shots`` too


@dataclass(frozen=True)
class LabelMapping(Section):
    dense: str = ""
    sparse: str = ""
    prompt_pair: tuple[str, ...] = ()
    prompt_dataset: str = ""
    quant_pair: tuple[str, ...] = ()
    # Beyond the paper (issue #35): label mappings run on the dense and sparse models at the section's N and first
    # seed, on every dataset, beside the paper's figures (which stay ILM); (): none.
    compare_methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clip(Section):
    models: tuple[str, ...] = ()
    class_names: str | None = None  # "fork": the authors' fork's class names; None: ours (clip/classnames.py)
    paper_methods: dict[str, str] | None = None
    paper_models: dict[str, str] | None = None  # our model -> the Table 2 column it plays
    paper_datasets: dict[str, str] | None = None
    batch_size: int | None = None  # None keeps the paper's (16); a rehearsal on a CPU sets it
    max_steps: int | None = None  # None: every step


@dataclass(frozen=True)
class CrossModal(Section):
    models: tuple[str, ...] = ()
    max_steps: int = 0
    max_train: int | None = None
    table3_models: dict[str, tuple[str, str]] | None = None
    table4_models: dict[str, int] | None = None
    paper_tasks: dict[str, str] | None = None


@dataclass(frozen=True)
class YourModel(Section):
    """Notebook 08 (beyond the paper): the hidden-cost report on one dense model and its compressed versions."""

    dense: str = ""
    compressed: tuple[str, ...] = ()
    # The report's transfer methods (report.config.DEFAULT_METHODS), not the profile's VP methods: ILM-VP and the
    # cheap linear probe beside it.
    methods: tuple[str, ...] | None = ("ilm", "lp")
    holdout: int = 0
    # A fixed-width study (report.ReportConfig, stats/sequential.py): off by default; a target half-width in accuracy
    # points makes every cell run a pilot of `pilot_seeds` seeds, then as many as Stein's rule asks, at most
    # `max_seeds`.
    target_halfwidth: float | None = None
    max_seeds: int | None = None
    pilot_seeds: int = 5


COMMON: dict[str, Common] = {
    "paper": Common(datasets=PAPER_DATASETS, shots=SHOTS_GRID, methods=("rlm", "flm", "ilm"), seeds=(0, 1, 2),
                    epochs=100, eval_every=10, substitute=False,
                    # N above every class (Flowers102 N >= 20, DTD N = 50) runs on all images at N's batch size,
                    # as the paper did; the other profiles drop those cells (they are the full-data run).
                    oversized="paper"),
    "quick": Common(datasets=("cifar10", "oxford_pets"), shots=(1, 10, None), methods=("flm", "ilm"), seeds=(0,),
                    epochs=30, eval_every=10, substitute=True),
    "smoke": Common(datasets=SMOKE_DATASETS, shots=(2, 10, None), methods=("rlm", "flm", "ilm"), seeds=(0,),
                    epochs=6, eval_every=3, substitute=False),
    # 2 CPU cores: a 128-px canvas (about 3x cheaper than 224), a fixed stratified 2,000-image test
    # subset shared by every run, 16 epochs evaluated once at the end, N up to 50 (the largest
    # budget a laptop affords over the whole grid; full-data MNIST is 60k images per epoch).
    "mini": Common(datasets=MINI_DATASETS, shots=(1, 10, 50), methods=("ilm",), seeds=(0, 1, 2), epochs=16,
                   eval_every=16, substitute=False, canvas=128, max_test=2000),
}

_SMOKE_CLIP = dict(models=("tinyclip/dense", "tinyclip/prune-50"), datasets=("synth_colours",),
                   methods=("vp", "ilm-vp"), shots=(10, None), epochs=3, eval_every=3,
                   paper_models={"tinyclip/dense": "dense", "tinyclip/prune-50": "compressed_2x"},
                   paper_datasets={"synth_colours": "CIFAR-10"})

SECTION_CONFIGS: dict[str, dict[str, Section]] = {
    "sparse_transfer": {p: SparseTransfer(families=SPARSE_FAMILIES[p]) for p in PROFILES},
    # Mini: the int8 model at N in {1, 10} (the CPU budget did not stretch to its N=50 runs).
    "quantization": {p: Quantization(families=QUANT_FAMILIES[p], methods=("ilm",),
                                     shots=(1, 10) if p == "mini" else None) for p in PROFILES},
    # Calibration is measured at the largest budget: full data; on the mini profile N=50 for the
    # sparse family and N=10 for the int8 model (its largest budget there).
    "calibration": {p: Calibration(sparse_families=SPARSE_FAMILIES[p], quant_families=QUANT_FAMILIES[p],
                                   shots=(50,) if p == "mini" else (None,), quant_shots=(10,) if p == "mini" else None)
                    for p in PROFILES},
    "label_mapping": {
        "paper": LabelMapping(dense="resnet50/dense", sparse="resnet50/lt-14.671",
                              datasets=("oxford_pets", "dtd", "caltech101"), shots=(5,),
                              prompt_pair=("resnet50/lt-11.571", "resnet50/lt-18.664", "resnet50/lt-49.35"),
                              prompt_dataset="caltech101", quant_pair=("deit_tiny/fp32", "deit_tiny/w2a2")),
        "quick": LabelMapping(dense="resnet50/dense", sparse="resnet50/acdc-90", datasets=("oxford_pets",), shots=(5,),
                              prompt_pair=("resnet50/acdc-90",), prompt_dataset="oxford_pets",
                              quant_pair=("deit_tiny/fp32", "deit_tiny/w3a3")),
        "smoke": LabelMapping(dense="smallcnn/dense", sparse="smallcnn/prune-95", datasets=SMOKE_DATASETS, shots=(5,),
                              prompt_pair=("smallcnn/prune-90", "smallcnn/prune-95"), prompt_dataset="synth_shapes",
                              quant_pair=("smallcnn/dense", "smallcnn/w2a2"),
                              compare_methods=("rlm", "flm", "ilm", "blm", "blm+", "fullymap")),
        "mini": LabelMapping(dense=f"{LITE0}/dense", sparse=f"{LITE0}/prune-50", datasets=MINI_DATASETS, shots=(5,),
                             prompt_pair=(f"{LITE0}/prune-30", f"{LITE0}/prune-50"), prompt_dataset="mnist",
                             quant_pair=(f"{LITE0}/dense", f"{LITE0}/int8-tflite")),
    },
    "clip": {
        # Dense = UPop's uncompressed COCO fine-tune (the paper's dense row); OpenAI's release is an extra row.
        # "VP" is ILM-VP's own CLIP baseline (single-tp-vp), the paper's most likely set-up; Bahng's is
        # methods=["vp", ...]. Class names: the fork's (GTSRB short labels, EuroSAT folder names, digits
        # for Caltech101 / Flowers102); None elsewhere = ours (clip/classnames.py).
        "paper": Clip(models=("clip_vit_l14_336/upop-coco", "clip_vit_l14_336/upop-2x", "clip_vit_l14_336/upop-4x",
                              "clip_vit_l14_336/openai"),
                      datasets=tuple(d for d in PAPER_DATASETS if d != "flowers102"),
                      methods=("single-tp-vp", "ilm-vp"), class_names="fork",
                      paper_methods={"single-tp-vp": "VP", "ilm-vp": "ILM-VP"}, epochs=10, eval_every=1),
        # quick: OpenAI's file (downloadable) as the dense model, so UPop-2x's labelled substitute can be built;
        # it plays Table 2's dense column (else the table has no dense row and no drop)
        "quick": Clip(models=("clip_vit_l14_336/openai", "clip_vit_l14_336/upop-2x"), datasets=("cifar10",),
                      methods=("ilm-vp",), shots=(10, None), epochs=5, eval_every=5,
                      paper_models={"clip_vit_l14_336/openai": "dense", "clip_vit_l14_336/upop-2x": "compressed_2x"}),
        # Stand-ins are compared with the paper's rows they play: the tiny dual encoder's dense and
        # pruned versions for CLIP and UPop-2x, the generated colours task (tinyclip knows colours, not
        # shapes) for CIFAR-10.
        "smoke": Clip(**_SMOKE_CLIP),
        # No CLIP-like dual encoder is carried by the registries: the section stays on the smoke
        # profile's generated stand-ins (tiny dual encoder, colours task).
        "mini": Clip(**_SMOKE_CLIP, seeds=(0,)),
    },
    "cross_modal": {
        "paper": CrossModal(models=("resnet34/dense", "resnet34/gmp", "resnet50/dense", "resnet50/lt-11.571",
                                    "deit_tiny/fp32", "deit_tiny/w4a4", "deit_tiny/w3a3", "deit_tiny/w2a2"),
                            datasets=("yelp_polarity", "imdb", "ag_news", "dbpedia_14", "splice"), methods=("max",),
                            shots=(None,), epochs=100, max_steps=100_000),
        "quick": CrossModal(models=("resnet50/dense", "resnet50/acdc-90"), datasets=("ag_news", "splice"),
                            methods=("max",), shots=(None,), epochs=5, max_steps=5_000, max_train=20_000,
                            table3_models={"resnet50/dense": ("ResNet-50", "dense"),
                                           "resnet50/acdc-90": ("ResNet-50", "sparse")},
                            table4_models={}),
        "smoke": CrossModal(models=("smallcnn/dense", "smallcnn/prune-90", "smallcnn/w3a3", "smallcnn/w2a2"),
                            datasets=("synth_text4", "synth_dna"), methods=("max",), shots=(None,), epochs=2,
                            max_steps=300,
                            table3_models={"smallcnn/dense": ("ResNet-50", "dense"),
                                           "smallcnn/prune-90": ("ResNet-50", "sparse"),
                                           "smallcnn/w3a3": ("DeiT-T", "3-bit")},
                            table4_models={"smallcnn/dense": 32, "smallcnn/w3a3": 3, "smallcnn/w2a2": 2},
                            paper_tasks={"synth_text4": "AG", "synth_dna": "Splice"}),
        # A real ImageNet backbone reprogrammed for the generated text and DNA tasks (the real text
        # sets are on the Hugging Face hub, out of reach offline).
        "mini": CrossModal(models=(f"{LITE0}/dense", f"{LITE0}/prune-50", f"{LITE0}/int8-tflite"), seeds=(0,),
                           datasets=("synth_text4", "synth_dna"), methods=("max",), shots=(None,), epochs=2,
                           max_steps=300,
                           table3_models={f"{LITE0}/dense": ("ResNet-50", "dense"),
                                          f"{LITE0}/prune-50": ("ResNet-50", "sparse")},
                           table4_models={f"{LITE0}/dense": 32},
                           paper_tasks={"synth_text4": "AG", "synth_dna": "Splice"}),
    },
    # Three seeds everywhere: the report's verdicts rest on intervals, and one seed has none.
    "your_model": {
        "paper": YourModel(dense="resnet50/dense", compressed=("resnet50/acdc-90", "resnet50/rigl-90"),
                           datasets=("cifar10", "oxford_pets"), shots=(1, 10, None), holdout=20),
        "quick": YourModel(dense="resnet50/dense", compressed=("resnet50/acdc-90",), datasets=("cifar10",),
                           shots=(1, 10, None), seeds=(0, 1, 2), holdout=20),
        "smoke": YourModel(dense="smallcnn/dense", compressed=("smallcnn/prune-90", "smallcnn/w3a3"),
                           datasets=("synth_shapes",), shots=(2, 10), seeds=(0, 1, 2), holdout=5),
        "mini": YourModel(dense=f"{LITE0}/dense", compressed=(f"{LITE0}/prune-30", f"{LITE0}/int8-tflite"),
                          datasets=("mnist",), holdout=20, shots=(1, 10)),
    },
}
SECTIONS = tuple(SECTION_CONFIGS)


def section_config(section: str, profile: str) -> Section:
    """The typed configuration of one notebook section on one profile (before the profile's common values)."""
    check_choice("section", section, SECTIONS)
    check_choice("profile", profile, PROFILES)
    return SECTION_CONFIGS[section][profile]


def settings(section: str, profile: str, **overrides: Any) -> dict[str, Any]:
    """The resolved settings of a notebook section: the profile's common values, the section's, then the
    non-None overrides, each checked against its field's declared type."""
    config = section_config(section, profile)
    common = COMMON[profile]
    resolved = {f.name: getattr(common, f.name) for f in dataclasses.fields(common)}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is not None or f.name not in resolved:  # a common field left None keeps the profile's value
            resolved[f.name] = value
    hints = {**typing.get_type_hints(type(config)), **typing.get_type_hints(Common)}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in resolved:
            raise SpecError(f"{section!r} has no setting {name!r}; known settings: {sorted(resolved)}")
        if not _matches(value, hints[name]):
            raise SpecError(f"parameter {name!r} must be {_describe(hints[name])} (like the profile's "
                            f"{resolved[name]!r}), got {value!r} ({type(value).__name__})")
        resolved[name] = value
    resolved["profile"] = profile
    return resolved


@dataclass(frozen=True)
class Resolved:
    """One section on one profile with the overrides applied, typed: what the grid builder reads.

    ``section`` has every common field filled (``datasets``, ``shots``, ...); ``common`` carries the
    profile-wide ones a section does not declare (``substitute``, ``canvas``, ``max_test``, ``oversized``).
    """

    profile: str
    section: Section
    common: Common


def resolve(section: str, profile: str, **overrides: Any) -> Resolved:
    """``settings`` as typed objects (the same values, checked the same way)."""
    values = settings(section, profile, **overrides)
    config = section_config(section, profile)
    section_values = {f.name: values[f.name] for f in dataclasses.fields(config)}
    common_values = {f.name: values[f.name] for f in dataclasses.fields(Common)}
    return Resolved(profile, dataclasses.replace(config, **section_values),
                    dataclasses.replace(COMMON[profile], **common_values))


def _matches(value: Any, hint: Any) -> bool:
    """``value`` fits the declared type ``hint``; lists stand for tuples (papermill passes YAML lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        return len(args) == len(value) and all(map(_matches, value, args))
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("None" if arg is type(None) else _describe(arg) for arg in args)
    if origin is tuple:
        return "a list"
    if origin is dict:
        return "a dict"
    names = {bool: "True or False", int: "an int", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
