"""Pretraining of the smoke profile's source models: ``models.smallcnn.SmallCNN`` on the generated 100-class task.

It stands in for an ImageNet classifier so the whole study runs offline on a CPU in minutes:
64 px canvas instead of 224, 100 source classes instead of 1000, same normalisation and the same
prompt, mapping and training code. Its compressed versions are made with the package's own
substitutes, at a subset of the paper's levels:

- ``smallcnn/prune-{50,80,90,95}``: global magnitude pruning (``prune.magnitude_prune``) of the
  dense model to that percent sparsity, then one epoch of masked fine-tuning, as sparse
  checkpoints are trained sparse rather than pruned after the fact.
- ``smallcnn/w{8,4,3,2}a{8,4,3,2}``: LSQ fake quantization (``quantize.fake_quantize``) of
  weights and activations, first and last layer at 8 bits, calibrated on source batches, then
  (below 8 bits) a quarter epoch of quantization-aware fine-tuning.

Every model is trained once per machine and cached under ``paths.models_dir()``; the cache key
includes a version number, bumped whenever the recipe changes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from ..data.synthetic import COLOUR_NAMES, SHAPES, source_split
from ..models import ModelEntry, SourceModel, register
from ..models.smallcnn import CANVAS, NUM_SOURCE_CLASSES, SmallCNN

RECIPE_VERSION = 3
PRUNE_LEVELS = (50, 80, 90, 95)  # percent of weights removed
QUANT_BITS = (8, 4, 3, 2)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    from ..models._registry import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def _source_data(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = source_split(split, per_class=60 if split == "train" else 20, size=CANVAS, seed=RECIPE_VERSION)
    return _normalise(data.images), data.labels


def _fit(model: nn.Module, epochs: float, lr: float, seed: int) -> None:
    """Plain supervised training on the source task (SGD, one-cycle schedule, random flips).

    ``epochs`` may be fractional: compressed models are fine-tuned on a part of an epoch, which is
    enough to re-fit BatchNorm and the surviving weights at this scale and keeps the smoke profile fast.
    """
    images, labels = _source_data("train")
    g = torch.Generator().manual_seed(seed)
    if epochs < 1:
        keep = torch.randperm(len(labels), generator=g)[:int(epochs * len(labels))]
        images, labels, epochs = images[keep], labels[keep], 1
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9,
                          weight_decay=5e-4, nesterov=True)
    steps = int(epochs) * (len(labels) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(labels), generator=g)
        for i in range(0, len(order) - 127, 128):
            idx = order[i:i + 128]
            x = images[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


@torch.no_grad()
def source_accuracy(model: nn.Module) -> float:
    """Top-1 (%) on the held-out source test split: the smoke profile's "upstream ImageNet accuracy"."""
    images, labels = _source_data("test")
    model.eval()
    correct = sum(int((model(images[i:i + 500]).argmax(1) == labels[i:i + 500]).sum())
                  for i in range(0, len(labels), 500))
    return 100 * correct / len(labels)


def _cached(tag: str, build: Callable[[], nn.Module]) -> tuple[nn.Module, dict]:
    """Load ``tag`` from the model cache, or build, measure and save it atomically."""
    path = cache_path(tag)
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=False)
        return blob["module"], blob["info"]
    start = time.time()
    module = build()
    info = {"source_top1": source_accuracy(module), "train_seconds": round(time.time() - start, 1)}
    atomic_torch_save({"module": module, "info": info}, path)
    return module, info


def _dense() -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN()
    _fit(model, epochs=6, lr=0.1, seed=0)  # about 70 % top-1 on the held-out source split
    return model


def _pruned(percent: int) -> nn.Module:
    from torch.nn.utils import prune as torch_prune

    from ..models.prune import counted_layers, magnitude_prune

    model = copy.deepcopy(_cached("dense", _dense)[0])
    layers = counted_layers(model, exclude=(), kinds=(nn.Conv2d, nn.Linear))
    # Masks stay attached during fine-tuning so pruned weights stay zero; removed afterwards.
    magnitude_prune(model, remaining=1 - percent / 100, scope="global", layers=layers,
                    finetune=lambda m: _fit(m, epochs=1, lr=0.05, seed=percent))
    for _, module in layers:
        if torch_prune.is_pruned(module):
            torch_prune.remove(module, "weight")
    return model


def _quantized(bits: int) -> nn.Module:
    from ..models.quantize import fake_quantize

    dense = _cached("dense", _dense)[0]
    images, _ = _source_data("train")
    model = fake_quantize(copy.deepcopy(dense), bits, [images[i:i + 256] for i in range(0, 1024, 256)])
    if bits < 8:  # 8-bit post-training quantization needs no fine-tuning
        # The step sizes stay at their MSE initialisation: trained without LSQ's gradient scaling
        # they diverge and the model collapses to chance; the weights adapt to the fixed grid.
        for name, param in model.named_parameters():
            if name.endswith(".step"):
                param.requires_grad_(False)
        _fit(model, epochs=0.25, lr=0.01, seed=bits)
    return model


def _loader(tag: str, build: Callable[[], nn.Module]) -> Callable[[ModelEntry], SourceModel]:
    def load(entry: ModelEntry) -> SourceModel:
        module, info = _cached(tag, build)
        names = [f"{COLOUR_NAMES[c % 10]} {SHAPES[c // 10]}" for c in range(NUM_SOURCE_CLASSES)]
        provenance = {"name": entry.name, "substitute": False, "recipe": f"smallcnn r{RECIPE_VERSION}", **info}
        if entry.sparsity is not None:
            from ..models.prune import counted_layers, measure_sparsity

            provenance["measured_sparsity"] = measure_sparsity(
                module, counted_layers(module, exclude=(), kinds=(nn.Conv2d, nn.Linear)))
        if entry.bits is not None:
            provenance["bits"] = entry.bits
        return SourceModel(entry.name, module, canvas_size=CANVAS, num_classes=NUM_SOURCE_CLASSES,
                           class_names=names, provenance=provenance)

    return load


def _register() -> None:
    common = dict(arch="smallcnn", source="trained here on the generated synth_source task", license="MIT (ours)")
    register(ModelEntry("smallcnn/dense", compression="dense", method="dense", loader=_loader("dense", _dense),
                        **common))
    for percent in PRUNE_LEVELS:
        register(ModelEntry(f"smallcnn/prune-{percent}", compression="unstructured", method="magnitude",
                            sparsity=percent / 100, parent="smallcnn/dense",
                            loader=_loader(f"prune-{percent}", lambda p=percent: _pruned(p)),
                            notes="global magnitude pruning + 1 epoch masked fine-tune", **common))
    for bits in QUANT_BITS:
        register(ModelEntry(f"smallcnn/w{bits}a{bits}", compression="quantization", method="lsq", bits=bits,
                            parent="smallcnn/dense", loader=_loader(f"w{bits}a{bits}", lambda b=bits: _quantized(b)),
                            notes="LSQ fake quantization (first/last layer 8 bit) + 1/4 epoch QAT below 8 bit",
                            **common))


_register()


def cache_path(tag: str) -> Path:
    """Where the cached model ``tag`` lives (for tests and clean-up)."""
    return paths.models_dir() / f"smallcnn-{tag}-r{RECIPE_VERSION}.pt"
