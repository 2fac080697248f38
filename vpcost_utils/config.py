"""Run specs, run ids and the paper's fixed settings (batch size per N-shot, Table 5).

A ``RunSpec`` is everything that determines one result. Its run id is a short hash of its
canonical JSON, so the same spec always maps to the same result file and a rerun skips it.
Runtime choices that should not change the answer (device, progress bars) are not in the spec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, check_choice

#: The package's version (pyproject.toml's); every record's provenance carries it (``running.runs``).
__version__ = "0.1.0"

#: Table 5 of the paper: training batch size per N-shot budget (None = full data).
BATCH_SIZE_BY_SHOTS: dict[int | None, int] = {1: 8, 2: 8, 5: 16, 10: 32, 20: 32, 50: 64, 100: 128, None: 128}

#: The paper's N-shot grid; None stands for the full training set.
SHOTS_GRID: tuple[int | None, ...] = (1, 2, 5, 10, 20, 50, 100, None)

TASKS = ("vp", "clip", "crossmodal")
# RunSpec fields added after the first release, left out of the run id while None
_LATER_FIELDS = ("canvas", "max_test", "holdout", "class_names", "oversized", "sample_seed", "precision", "prompt")
PRECISIONS = ("fp32", "bf16")
#: vp prompts (``vp/visual_prompts.py``): "pad" is the paper's padding prompt (None means it); beyond the paper
#: (issue #35), BLM's / SMM's full-image "watermark" on the resized image, AutoVP's learnable input scale, and SMM's
#: watermark times a sample-specific mask from a small CNN.
PROMPTS = ("pad", "watermark", "autovp-scale", "smm")
#: The version of what a spec computes. A record made under another protocol is never reused: the store
#: treats it as missing and the run is made again (``store.ResultStore.stale``). Bump it when a change of
#: code changes the numbers a spec gives. 2: every run on one intra-op thread (``arithmetic.py``); before,
#: the thread count was whatever the runner's process had, and a 2-thread and a 1-thread run of one spec
#: differed by up to 4 accuracy points (docs/mini-study.md).
PROTOCOL = 2
# vp: the paper's three, then beyond the paper (issue #35, mapping.py): BLM, BLM+ and AutoVP's FullyMap, and the
# linear probe (lp, probe/: a new head on the frozen features instead of a prompt)
METHODS = {"vp": ("rlm", "flm", "ilm", "blm", "blm+", "fullymap", "lp"), "clip": ("vp", "ilm-vp", "single-tp-vp"),
           "crossmodal": ("max", "mean")}
CLASS_NAME_SOURCES = ("fork",)  # besides None, our own names
DEFAULT_LR = {"vp": 0.01, "clip": 40.0, "crossmodal": 1e-3}
DEFAULT_BATCH = {"clip": 16, "crossmodal": 4}
#: Per-task defaults filled in when a spec leaves ``epochs`` / ``max_steps`` as None: the paper's 100 VP
#: epochs, the fork's 10 CLIP epochs, and Neekhara's 100,000 cross-modal steps (within 100 epochs).
DEFAULT_EPOCHS = {"vp": 100, "clip": 10, "crossmodal": 100}
DEFAULT_MAX_STEPS: dict[str, int | None] = {"vp": None, "clip": None, "crossmodal": 100_000}


def batch_size_for(n_shots: int | None) -> int:
    """The paper's batch size for an N-shot budget; budgets between grid points round down."""
    if n_shots is None:
        return BATCH_SIZE_BY_SHOTS[None]
    return BATCH_SIZE_BY_SHOTS[max(k for k in BATCH_SIZE_BY_SHOTS if k is not None and k <= max(n_shots, 1))]


@dataclass(frozen=True)
class RunSpec:
    """One training run. Every field is part of the run id.

    Defaults are the paper's, per task: 100 epochs, Adam lr 0.01, batch size from Table 5 for ``task="vp"``;
    10 epochs, SGD lr 40, batch 16 for ``task="clip"``; 100 epochs capped at 100,000 steps, Adam lr 1e-3,
    batch 4 for ``task="crossmodal"``. ``epochs`` and ``max_steps`` left as None are filled in from the
    task when the spec is made, so the run id always holds the values the run used.
    """

    model: str  # registry name, e.g. "resnet50/acdc-90" (see models.list_models())
    dataset: str  # registry name, e.g. "cifar10" (see data.list_datasets())
    # vp: rlm | flm | ilm | blm | blm+ | fullymap, or lp (a linear probe on frozen features, probe/);
    # clip: vp | ilm-vp | single-tp-vp; crossmodal: max | mean
    method: str = "ilm"
    task: str = "vp"  # vp | clip | crossmodal
    n_shots: int | None = None  # training images per class; None = full training set
    seed: int = 0
    epochs: int | None = None  # None: the task's default (DEFAULT_EPOCHS)
    eval_every: int = 10  # evaluate on the full test set every k epochs (and after the last); 1 = reference
    batch_size: int | None = None  # None: the task's default (Table 5 for vp)
    lr: float | None = None  # None: the task's default
    max_train: int | None = None  # cap on training examples (crossmodal text sets: the first N rows)
    max_steps: int | None = None  # cap on optimizer steps, every task (loop.Schedule); None: the task's default
    substitute: bool = False  # allow a labelled substitute when the real checkpoint is missing
    save_prompts: tuple[int, ...] = ()  # epochs after which the prompt is saved (Fig. 20)
    canvas: int | None = None  # the model's input resolution; None: the model's own (224 for ImageNet models)
    max_test: int | None = None  # evaluate on a fixed stratified subset of this many test images; None: all
    # Training images per class held out (seeded, before the N-shot draw) to fit a temperature on; None: none.
    holdout: int | None = None
    # CLIP text prompts' class names: None = ours (descriptive), "fork" = the authors' fork's (digits for
    # Caltech101/Flowers102, GTSRB_LABEL_MAP, ...); see docs/clip_and_crossmodal.md.
    class_names: str | None = None
    # An N above every class of the dataset: None = refused (that run is the full-data one: the grid drops it);
    # "paper" = run it as the paper did, on every training image at N's batch size (Flowers102 N >= 20, DTD N = 50).
    oversized: str | None = None
    # The seed of the data draw alone (the N-shot sample and the held-out images); None: ``seed``. Set it to
    # tell the data budget's own variance (which N images) from the optimisation's (batch order, RLM).
    sample_seed: int | None = None
    # Arithmetic of the training and mapping passes: None = the reference's (fp32 on the CPU, bf16 autocast on
    # CUDA), "fp32" = never autocast, "bf16" = bf16 autocast on any device (AMX on this CPU: 2-3x faster).
    # The test pass stays fp32; quantized backbones always train in fp32 (see train._autocast).
    precision: str | None = None
    # The visual prompt (task "vp", not "lp"): None = "pad", the paper's padding prompt; "watermark" = a full-image
    # additive prompt on the image resized to the canvas (BLM, SMM); "autovp-scale" = the padding prompt around the
    # image scaled by a learned factor (AutoVP); "smm" = the watermark times a per-image mask from a small CNN trained
    # with it (SMM). See PROMPTS and docs/reproduction.md, "Beyond ILM".
    prompt: str | None = None

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice(f"{self.task} method", self.method, METHODS[self.task])
        if self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS[self.task])
        if self.max_steps is None and DEFAULT_MAX_STEPS[self.task] is not None:
            object.__setattr__(self, "max_steps", DEFAULT_MAX_STEPS[self.task])
        for name, kind in (("model", str), ("dataset", str), ("seed", int), ("epochs", int), ("eval_every", int),
                           ("substitute", bool)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise SpecError(f"RunSpec.{name} must be {kind.__name__}, got {value!r} ({type(value).__name__})")
        if self.sample_seed is not None and (not isinstance(self.sample_seed, int) or isinstance(self.sample_seed, bool)
                                             or self.sample_seed < 0):
            raise SpecError(f"RunSpec.sample_seed must be a non-negative int or None, got {self.sample_seed!r}")
        for name in ("sample_seed", "precision"):
            if getattr(self, name) is not None and self.task != "vp":
                raise SpecError(f"RunSpec.{name} only applies to task='vp' for now, got task={self.task!r}")
        if self.precision is not None:
            check_choice("precision", self.precision, PRECISIONS)
        if self.prompt is not None:
            check_choice("prompt", self.prompt, PROMPTS)
            if self.task != "vp" or self.method == "lp":
                raise SpecError(f"RunSpec.prompt only applies to visual prompting (task='vp', a method other than "
                                f"'lp'), got task={self.task!r}, method={self.method!r}")
            if self.prompt == "pad":  # the default prompt named: one run, one id
                object.__setattr__(self, "prompt", None)
        if self.sample_seed == self.seed:  # the same draw as the plain seed: one run, one id
            object.__setattr__(self, "sample_seed", None)
        for name in ("n_shots", "batch_size", "max_train", "max_steps", "canvas", "max_test", "holdout"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise SpecError(f"RunSpec.{name} must be a positive int or None, got {value!r}")
        if self.class_names is not None:
            check_choice("class_names", self.class_names, CLASS_NAME_SOURCES)
            if self.task != "clip":
                raise SpecError(f"RunSpec.class_names only applies to task='clip' (text prompts), "
                                f"got task={self.task!r}")
        if self.oversized is not None:
            check_choice("oversized", self.oversized, ("paper",))
            if self.task != "vp":
                raise SpecError(f"RunSpec.oversized only applies to task='vp', got task={self.task!r}")
            if self.n_shots is None:  # full data is never oversized: one run, one id
                object.__setattr__(self, "oversized", None)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise SpecError(f"RunSpec.lr must be a positive number or None, got {self.lr!r}")
        if self.epochs < 1 or self.eval_every < 1:
            raise SpecError(f"RunSpec.epochs and eval_every must be >= 1, got {self.epochs}, {self.eval_every}")
        if not isinstance(self.save_prompts, tuple):
            object.__setattr__(self, "save_prompts", tuple(self.save_prompts))

    @property
    def effective_batch_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return batch_size_for(self.n_shots) if self.task == "vp" else DEFAULT_BATCH[self.task]

    @property
    def data_seed(self) -> int:
        """The seed of the N-shot sample and the held-out images."""
        return self.seed if self.sample_seed is None else self.sample_seed

    @property
    def effective_lr(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.task]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["save_prompts"] = list(self.save_prompts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"unknown RunSpec fields {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "save_prompts" in d:
            d["save_prompts"] = tuple(d["save_prompts"])
        return cls(**d)

    @property
    def run_id(self) -> str:
        """12 hex digits of the SHA-1 of the canonical JSON of the spec.

        Fields added after the first release are left out while they hold their default, so every
        run id (and result file) written before they existed stays valid.
        """
        d = {k: v for k, v in self.to_dict().items() if not (k in _LATER_FIELDS and v is None)}
        canonical = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)
