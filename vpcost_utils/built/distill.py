"""Recovering a compressed network without its training data: distillation from the dense model.

The paper's compressed models are *retrained*: GMP, AC/DC, RigL and lottery tickets keep their ImageNet
accuracy close to the dense model's, and VVTQ's low-bit ViTs are quantization-aware trained. ImageNet
cannot be had here, but the teacher can: the student starts from the dense weights and learns to match
the dense model's ImageNet softmax on heavily augmented crops of the calibration photographs
(``natural_images.distillation_crops``: the single-image distillation recipe of Asano & Saeed, arXiv
2112.00725; KL at a temperature). Two students:

- **sparse**: gradual magnitude pruning (Zhu & Gupta's cubic schedule) from ``start_sparsity`` (where a
  one-shot global prune of Lite0 is still nearly lossless) to the target over the first ``ramp`` of the
  steps, one global magnitude threshold over the counted layers, re-taken every ``prune_every`` steps; the
  mask is then fixed and the last steps only recover. Pruned weights are exactly zero after every step.
- **sparse, reconstructed** (``prune="reconstruct"``): the target mask at once, by layer-wise reconstruction
  (``reconstruct.reconstruct_prune``: SparseGPT's Optimal-Brain-Surgeon update, every layer to the same
  fraction, calibrated on crops of the calibration photographs), then fixed; all the steps only recover.
  One-shot, before any distillation, it keeps 59.8 % top-1 agreement at 128 px where a global magnitude
  prune keeps under 20 % (2026-12-04, docs/models.md).
- **quant**: LSQ-style fake quantization (``quantize.fake_quantize``: per-channel weight steps, 8-bit first
  and last layer, activation steps by MSE), then quantization-aware distillation of the weights and of
  every step size through the straight-through rounding (LSQ's gradient).

BatchNorm keeps the dense model's running statistics throughout (the student trains in eval mode): the
photographs are far too narrow a sample of ImageNet to re-estimate them (``efficientnet_lite_compressed``
measured that). Teacher logits of the crop pool are computed once and cached; a build checkpoints
atomically every ``checkpoint_seconds`` and resumes from there, and the finished model is written
atomically, so an interrupted build never leaves a file that loads. Libraries considered: NNCF, AIMET,
Brevitas and torchao each bring their own module wrappers (or export formats) that our strictly loaded,
fake-quantized plain-PyTorch modules and the VP loop's gradient-through-frozen-model would have to be
rebuilt around; the distillation loop below is 40 lines on top of our own LSQ quantizers and masks.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from ..arithmetic import arithmetic_key
from ..errors import SpecError
from ..models._registry import fingerprint
from ..models.prune import _keep_masks, measure_sparsity
from .agreement import normalise
from .natural_images import calibration_crops, distillation_crops

RECIPE_VERSION = 1
SPARSITIES = (0.5, 0.7, 0.9)
BIT_WIDTHS = ((4, 8), (4, 4), (3, 3), (2, 2))  # (weights, activations) of the inner layers
#: pruning rule -> (the registry's method tag, how the registry's notes name it)
PRUNE_METHODS: dict[str, tuple[str, str]] = {
    "gmp": ("gmp-distill", "gradual magnitude pruning"),
    "reconstruct": ("obs-distill", "layer-wise OBS reconstruction pruning"),
}
_LATER_FIELDS = {"prune": "gmp", "photos": ()}  # fields added after RECIPE_VERSION 1, with their default
RECONSTRUCT_CROPS = 256  # calibration crops for the layer-wise Hessians: 512 (or augmented ones) did no better


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides a recovered model; its ``key`` names the cached file, so a change rebuilds."""

    kind: str  # "sparse" | "quant"
    sparsity: float | None = None
    weight_bits: int | None = None
    act_bits: int | None = None
    steps: int = 800
    batch_size: int = 32
    lr: float = 1e-4
    temperature: float = 2.0
    size: int = 128  # the mini profile's canvas: the resolution the transfer runs feed the model
    pool: int = 4096
    start_sparsity: float = 0.3
    ramp: float = 0.6
    prune_every: int = 50
    prune: str = "gmp"  # "gmp" (gradual magnitude) | "reconstruct" (layer-wise OBS, then fixed)
    # the calibration photographs by name (photo_packages.calibration_names); empty: the library's twelve
    photos: tuple[str, ...] = ()
    seed: int = 0
    version: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        if self.photos:
            from .photo_packages import check_calibration

            object.__setattr__(self, "photos", tuple(self.photos))  # a list would not hash, and keys must not vary
            check_calibration(self.photos)  # a held-out photograph is refused here, before anything is built
        if self.kind == "sparse":
            if self.sparsity not in SPARSITIES:
                raise SpecError(f"recovered sparsity {self.sparsity!r} is not supported; choose one of {SPARSITIES}")
            if self.prune not in PRUNE_METHODS:
                raise SpecError(f"unknown pruning method {self.prune!r}; choose one of {tuple(PRUNE_METHODS)}")
        elif self.kind == "quant":
            if (self.weight_bits, self.act_bits) not in BIT_WIDTHS:
                raise SpecError(f"recovered bit widths W{self.weight_bits}A{self.act_bits} are not supported; "
                                f"choose one of {', '.join(f'W{w}A{a}' for w, a in BIT_WIDTHS)}")
        else:
            raise SpecError(f"unknown recovery kind {self.kind!r}; choose 'sparse' or 'quant'")
        if self.steps < 1 or self.batch_size < 1 or self.pool < self.batch_size:
            raise SpecError(f"a recipe needs steps >= 1 and pool >= batch_size >= 1, got {self}")

    def key(self) -> str:
        fields = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():  # so the builds cached before a field existed keep their key
            if fields[name] == default:
                del fields[name]
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def sparsity_at(recipe: Recipe, step: int) -> float:
    """Zhu & Gupta's cubic schedule: ``start`` at step 0 to the target at ``ramp * steps``, then constant."""
    progress = min(1.0, step / _ramp_end(recipe))
    return recipe.sparsity + (recipe.start_sparsity - recipe.sparsity) * (1 - progress) ** 3


def _ramp_end(recipe: Recipe) -> int:
    """The step at which a sparse recipe reaches its target; the mask is fixed from there on."""
    return max(1, round(recipe.ramp * recipe.steps))


def _prune_now(recipe: Recipe, step: int) -> bool:
    end = _ramp_end(recipe)
    return step <= end and (step % recipe.prune_every == 0 or step == end)


def _mask(layers: list[nn.Module], sparsity: float) -> list[torch.Tensor]:
    weights = [layer.weight for layer in layers]
    return _keep_masks(weights, round(sparsity * sum(w.numel() for w in weights)))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes at temperature ``t``, times ``t^2`` (Hinton's gradient scale)."""
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1), log_target=True,
                    reduction="batchmean") * t * t


def _distillation_crops(recipe: Recipe) -> torch.Tensor:
    """The recipe's augmented crops: of its named photographs, or of the library's calibration ones."""
    if recipe.photos:
        from .photo_packages import distillation_crops_of

        return distillation_crops_of(recipe.photos, recipe.pool, recipe.size, recipe.seed)
    return distillation_crops(recipe.pool, recipe.size, recipe.seed)


def _calibration_crops(recipe: Recipe, n: int) -> torch.Tensor:
    if recipe.photos:
        from .photo_packages import calibration_crops_of

        return calibration_crops_of(recipe.photos, n, recipe.size, recipe.seed)
    return calibration_crops(n, recipe.size, recipe.seed)


def _pool(dense: nn.Module, mean: tuple, std: tuple, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented crops (regenerated: deterministic) and the dense model's logits on them (cached)."""
    crops = _distillation_crops(recipe)
    # the thread count and kernel set too: the teacher's logits follow its summation order (arithmetic.py)
    what = (f"{recipe.pool}-{recipe.size}-{recipe.seed}-{RECIPE_VERSION}-{fingerprint(dense)}-{mean}-{std}"
            f"-t{torch.get_num_threads()}-{arithmetic_key()}")
    if recipe.photos:  # only then: the tags of the pools cached before the field existed stay as they were
        from .photo_packages import names_digest

        what += f"-photos-{names_digest(recipe.photos)}"
    tag = hashlib.sha256(what.encode()).hexdigest()[:12]
    path = paths.models_dir() / "recovery" / f"teacher-logits-{tag}.pt"
    if path.exists():
        return crops, torch.load(path, weights_only=True)
    with torch.no_grad():
        logits = torch.cat([dense(normalise(b, mean, std)) for b in crops.split(128)])
    atomic_torch_save(logits, path)
    return crops, logits


def _student(dense: nn.Module, mean: tuple, std: tuple, recipe: Recipe) -> nn.Module:
    student = copy.deepcopy(dense)
    if recipe.kind == "quant":
        from ..models.quantize import fake_quantize

        calib = list(normalise(_calibration_crops(recipe, 256), mean, std).split(64))
        student = fake_quantize(student, recipe.weight_bits, calib, per_channel=True, act_bits=recipe.act_bits)
    return student.eval().requires_grad_(True)


def build(recipe: Recipe, dense: nn.Module, mean: tuple, std: tuple,
          layers: Callable[[nn.Module], list[tuple[str, nn.Module]]], partial: Path, *,
          checkpoint_seconds: float = 60.0, progress: bool = True) -> tuple[nn.Module, dict]:
    """Distil a compressed student from ``dense`` by ``recipe``; resumes from ``partial`` when it holds this recipe.

    ``layers(module)`` names the layers a sparse recipe prunes and counts. Returns the student (eval, no
    grad) and what the build did (steps, seconds, final loss, measured sparsity); ``partial`` is removed.
    """
    from tqdm.auto import tqdm

    dense = dense.eval()
    crops, teacher = _pool(dense, mean, std, recipe)
    student = _student(dense, mean, std, recipe)
    pruned = [layer for _, layer in layers(student)] if recipe.kind == "sparse" else []
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=recipe.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / recipe.steps)))
    g = torch.Generator().manual_seed(recipe.seed)
    step, seconds, masks, losses = 0, 0.0, None, []
    if partial.exists():
        state = _load_partial(partial, recipe)
        if state is not None:
            student.load_state_dict(state["student"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            g.set_state(state["generator"])
            step, seconds, masks, losses = state["step"], state["seconds"], state["masks"], state["losses"]
    t = recipe.temperature
    start, saved = time.time() - seconds, time.time()
    if pruned and masks is None and recipe.prune == "reconstruct":
        from .reconstruct import reconstruct_prune

        calib = list(normalise(_calibration_crops(recipe, RECONSTRUCT_CROPS), mean, std).split(64))
        masks = reconstruct_prune(student, layers(student), calib, recipe.sparsity, progress=progress)
    bar = tqdm(total=recipe.steps, initial=step, desc=f"recover {recipe.kind} {recipe.key()}", disable=not progress)
    while step < recipe.steps:
        if pruned and recipe.prune == "gmp" and (masks is None or _prune_now(recipe, step)):
            with torch.no_grad():
                masks = _mask(pruned, sparsity_at(recipe, step))
                for layer, m in zip(pruned, masks, strict=True):
                    layer.weight.mul_(m)
        idx = torch.randint(0, recipe.pool, (recipe.batch_size,), generator=g)
        out = student(normalise(crops[idx], mean, std))
        loss = distillation_loss(out, teacher[idx], t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if pruned:
            with torch.no_grad():
                for layer, m in zip(pruned, masks, strict=True):
                    layer.weight.mul_(m)
        step += 1
        losses.append(round(loss.item(), 5))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if time.time() - saved >= checkpoint_seconds and step < recipe.steps:
            atomic_torch_save({"key": recipe.key(), "step": step, "seconds": time.time() - start,
                               "student": student.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                               "generator": g.get_state(), "masks": masks, "losses": losses}, partial)
            saved = time.time()
    bar.close()
    student.eval().requires_grad_(False)
    info = {"recipe": dataclasses.asdict(recipe), "recipe_key": recipe.key(), "steps": step,
            "build_seconds": round(time.time() - start, 1), "build_threads": torch.get_num_threads(),
            "build_arithmetic": arithmetic_key(),
            "final_loss": float(sum(losses[-50:]) / len(losses[-50:])),
            "loss_first_50": float(sum(losses[:50]) / len(losses[:50]))}
    if pruned:
        info["measured_sparsity"] = measure_sparsity(student, layers(student))
    partial.unlink(missing_ok=True)
    return student, info


def _load_partial(path: Path, recipe: Recipe) -> dict | None:
    """A partial build of this recipe, or None (with a message) for a truncated or foreign file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    except Exception as error:  # noqa: BLE001 - any unreadable partial means: start again
        print(f"recovery: ignoring unreadable partial build {path.name} ({type(error).__name__}); starting again")
        os.replace(path, path.with_suffix(".refused"))
        return None
    if state.get("key") != recipe.key():
        print(f"recovery: partial build {path.name} is of another recipe; starting again")
        return None
    return state
