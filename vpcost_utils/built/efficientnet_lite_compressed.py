"""Compressed EfficientNet-Lite0, made here from the real ImageNet weights (the ``mini`` profile's models).

No sparse or low-bit EfficientNet-Lite checkpoint can be had from the package registries (the one
real compressed model, Google's int8 file, is ``efficientnet_lite0/int8-tflite``), and ImageNet
itself cannot be had, so these are post-training compressions without retraining, labelled as such:

- ``efficientnet_lite0/prune-{30,40,50,70,80,90}``: one-shot global magnitude pruning (``prune.magnitude_prune``)
  of every dense convolution but the stem (the 1x1 expansion, projection and head convolutions) to
  exactly that percent sparsity. Depthwise convolutions, BatchNorm, the stem convolution and the
  classifier stay dense; sparsity is counted over the pruned layers.
- ``efficientnet_lite0/prune-{...}-bn``: the same masks, then **BatchNorm re-estimation** (running
  statistics recomputed on unlabelled natural-image crops, ``natural_images.calibration_crops``),
  the usual repair after pruning shifts activation statistics. Measured here it does not repair:
  the few photographs the libraries ship are too narrow a sample of ImageNet, and re-estimating the
  *dense* model's statistics on them alone drops its top-1 agreement with itself to about 41 %.
  So the plain masks are the default names and the re-estimated ones are kept for comparison.
- ``efficientnet_lite0/w{8,4,3,2}a{8,4,3,2}``: LSQ-style post-training fake quantization
  (``quantize.fake_quantize``) with per-channel weight steps (as TFLite quantizes EfficientNet-Lite),
  first and last layer at 8 bits, steps by MSE on natural-image crops; no quantization-aware training.

Without ImageNet there is no upstream top-1 to report; each model's provenance carries instead its
**agreement with the dense model** on crops of the held-out photographs, which no calibration step sees
(``built/agreement.py``: top-1 agreement and KL at 224 and 128 px, and the labelled photos' drift), a
proxy of how much of the ImageNet function survives. Calibration uses the other photographs only.
Models are built once per machine and cached under ``paths.models_dir()``; the cache key carries
``RECIPE_VERSION``. The recovered (retrained by distillation) models are ``efficientnet_lite_recovered``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from ..models._registry import ModelEntry, SourceModel, create_model, register
from .agreement import normalise, upstream_agreement

RECIPE_VERSION = 3  # 3: calibration never sees the held-out photographs; agreement measured on them
ARCH = "efficientnet_lite0"
DENSE = f"{ARCH}/dense"
PRUNE_LEVELS = (30, 40, 50, 70, 80, 90)  # 80, 90: the paper's AC/DC-80/90 and GMP-90 levels
QUANT_BITS = (8, 4, 3, 2)
CALIB_SIZE = 224  # the weights' own resolution: BatchNorm and activation ranges are measured there
CALIB_IMAGES = 512
CALIB_SEED = 0


def pruned_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions this family prunes and counts: every dense (groups=1) conv but the stem."""
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups == 1 and name != "conv_stem"]


def calibration_batches(model: SourceModel, n: int = CALIB_IMAGES, seed: int = CALIB_SEED,
                        batch_size: int = 64) -> list[torch.Tensor]:
    """Unlabelled crops of the calibration photographs at 224 px, normalised for ``model``, in batches."""
    from .natural_images import calibration_crops

    return list(normalise(calibration_crops(n, CALIB_SIZE, seed), model.mean, model.std).split(batch_size))


@torch.no_grad()
def reestimate_batchnorm(module: nn.Module, batches: list[torch.Tensor]) -> None:
    """Recompute every BatchNorm's running mean and variance as the plain average over ``batches``."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
    module.train()
    for batch in batches:
        module(batch)
    module.eval()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def prune_one_shot(module: nn.Module, percent: int, bn_batches: list[torch.Tensor] | None = None) -> dict:
    """Prune ``module`` in place to exactly ``percent`` % zeros over ``pruned_layers``; BatchNorm re-estimated
    on ``bn_batches`` when given. Returns the pruning report (measured sparsity, counts, rule)."""
    from ..models.prune import magnitude_prune

    report = magnitude_prune(module, remaining=1 - percent / 100, scope="global", layers=pruned_layers(module))
    if bn_batches is not None:
        reestimate_batchnorm(module, bn_batches)
    report.pop("counted_layers")
    return {**report, "rule": "global magnitude, every groups=1 conv but the stem",
            "bn_reestimated_on": f"{sum(len(b) for b in bn_batches)} natural-image crops" if bn_batches else None}


def _pruned(percent: int, reestimate: bool) -> tuple[nn.Module, dict]:
    dense = create_model(DENSE)
    module = copy.deepcopy(dense.module)
    report = prune_one_shot(module, percent, calibration_batches(dense) if reestimate else None)
    return module, {"pruning": report}


def _quantized(bits: int) -> tuple[nn.Module, dict]:
    from ..models.quantize import fake_quantize, quantized_bits

    dense = create_model(DENSE)
    module = fake_quantize(dense.module, bits, calibration_batches(dense, n=256), per_channel=True)
    widths = quantized_bits(module)
    return module, {"quantization": {"weights": f"{bits}-bit per-channel", "activations": f"{bits}-bit per-tensor",
                                     "edge_layers_bits": 8, "layer_bits": sorted(set(widths.values())),
                                     "quantized_layers": len(widths), "calibration": "256 natural-image crops, MSE",
                                     "qat": False}}


def _cached(tag: str, build: Callable[[], tuple[nn.Module, dict]]) -> tuple[nn.Module, dict]:
    """Load ``tag`` from the model cache, or build it, measure its agreement with the dense model and save."""
    path = paths.models_dir() / f"{ARCH}-{tag}-r{RECIPE_VERSION}.pt"
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written below
        return blob["module"], blob["info"]
    start = time.time()
    module, info = build()
    module.eval().requires_grad_(False)
    dense = create_model(DENSE)
    info["agreement"] = upstream_agreement(module, dense.module, dense.mean, dense.std, dense.class_names)
    info["build_seconds"] = round(time.time() - start, 1)
    atomic_torch_save({"module": module, "info": info}, path)
    return module, info


def _loader(tag: str, build: Callable[[], tuple[nn.Module, dict]]) -> Callable[[ModelEntry], SourceModel]:
    def load(entry: ModelEntry) -> SourceModel:
        from ..models.prune import measure_sparsity

        dense = create_model(DENSE)
        module, info = _cached(tag, build)
        provenance = {"name": entry.name, "substitute": False, "parent": DENSE,
                      "parent_file_sha256": dense.provenance.get("sha256"), "recipe": f"{ARCH} r{RECIPE_VERSION}",
                      **info}
        if entry.sparsity is not None:
            provenance["measured_sparsity"] = measure_sparsity(module, pruned_layers(module))
        if entry.bits is not None:
            provenance["bits"] = entry.bits
        return SourceModel(entry.name, module, canvas_size=dense.canvas_size, mean=dense.mean, std=dense.std,
                           num_classes=dense.num_classes, class_names=dense.class_names, provenance=provenance)

    return load


def _register() -> None:
    common = dict(arch=ARCH, parent=DENSE, license="Apache-2.0 (the dense weights')",
                  source=f"made here from {DENSE} (no retraining; see built/efficientnet_lite_compressed.py)")
    for percent in PRUNE_LEVELS:
        for suffix, reestimate in (("", False), ("-bn", True)):
            note = "one-shot global magnitude pruning" + (" + BatchNorm re-estimation" if reestimate else "")
            register(ModelEntry(f"{ARCH}/prune-{percent}{suffix}", compression="unstructured", method="magnitude",
                                sparsity=percent / 100, notes=note,
                                loader=_loader(f"prune-{percent}{suffix}",
                                               lambda p=percent, r=reestimate: _pruned(p, r)), **common))
    for bits in QUANT_BITS:
        register(ModelEntry(f"{ARCH}/w{bits}a{bits}", compression="quantization", method="lsq-ptq", bits=bits,
                            notes="LSQ-style PTQ, per-channel weights, 8-bit first/last layer, no QAT",
                            loader=_loader(f"w{bits}a{bits}", lambda b=bits: _quantized(b)), **common))


_register()
