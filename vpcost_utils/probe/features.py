"""Frozen penultimate features of a source model, computed once per image and cached.

The linear probe trains a new head on a frozen, eval-mode backbone with no augmentation (the authors'
``linear_probing.py``), so every image's feature vector is a pure function of (model weights, image, input size,
arithmetic). Each is computed once and kept in a cache file per (model, dataset, split, canvas); later runs (other
seeds, other N, full data) compute only the images they add. 100 epochs of a linear head then cost seconds.

The features are the input of the model's last linear layer (``penultimate``): a forward pre-hook on the last
``nn.Linear`` (timm, torchvision, our EfficientNet-Lite and its pruned / LSQ variants), or on the FULLY_CONNECTED op of
Google's int8 TFLite graph, dequantized with that op's input scale. A model with neither is refused by name.

The cache's name holds everything a feature depends on (not the model's name): the weights' fingerprint, the dataset
split, the stored image size and the canvas it is resized to, ``FEATURE_VERSION``, the arithmetic key and threads
(``arithmetic.py``) and the device, so a cache made by another model file, input size, code version or kernel set is
never read. Images go through in fixed batches of ``BATCH`` (the last one padded by repetition) so an image's
features do not depend on which other images were missing; the file is rewritten atomically after each chunk, so an
interrupted pass keeps what it finished and never leaves a file that loads half-written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import paths
from .._io import atomic_torch_save
from ..arithmetic import arithmetic_key, run_threads
from ..data import ImageSplit
from ..errors import SpecError
from ..models import SourceModel
from ..models._registry import fingerprint

#: Bump when a change of this module changes the features an image gets.
FEATURE_VERSION = 1
BATCH = 64  # images per forward pass: fixed, so the arithmetic of every image is the same whatever else is missing
CHUNK = 2048  # images between two saves of the cache file


def penultimate(module: nn.Module) -> tuple[nn.Module, float]:
    """The layer whose input is the feature vector, and the scale that makes that input real-valued."""
    from ..models.tflite_int8 import TfliteInt8Net

    if isinstance(module, TfliteInt8Net):
        fc = [layer for layer in module.layers if layer.kind == "FULLY_CONNECTED"]
        if fc:
            return fc[-1], fc[-1].input_scale  # its input is in integer steps of the input tensor's scale
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise SpecError(f"method 'lp' needs a model whose classifier is a linear layer (nn.Linear, or the TFLite "
                        f"graph's FULLY_CONNECTED op); {type(module).__name__} has none: use a VP method "
                        f"(rlm, flm, ilm) for this model")
    return linears[-1], 1.0


def cache_path(model: SourceModel, split: ImageSplit, canvas: int, device: torch.device, runtime: str = "") -> Path:
    """The feature cache of ``model`` over ``split`` resized to ``canvas``; its name is its identity.

    The model enters by its weights' fingerprint, not its name: two names for one set of weights (the studies'
    null control) read one cache, and one name whose file changed never reads the old one."""
    weights = fingerprint(model.module)
    what = (f"{weights}|{runtime}|{split.name}|{split.split}|{split.input_size}|{canvas}|{FEATURE_VERSION}|"
            f"{arithmetic_key() if device.type == 'cpu' else device.type}|t{run_threads()}|{torch.__version__}")
    tag = hashlib.sha256(what.encode()).hexdigest()[:16]
    return paths.features_dir() / f"{weights}-{split.name}-{split.split}-{canvas}px-{tag}.pt"


class FeatureCache:
    """Features of one model over one split at one canvas: ``get(indices)`` computes what is missing."""

    def __init__(self, model: SourceModel, backbone: nn.Module, split: ImageSplit, canvas: int, device: torch.device,
                 *, runtime: str = "", progress: bool = False):
        """``backbone``: ``model.module`` as the runs prepare it (BatchNorm folded, channels_last); ``runtime``
        names that preparation, part of the cache's identity."""
        self.model, self.backbone, self.split, self.canvas = model, backbone, split, canvas
        self.device, self.progress = device, progress
        self.path = cache_path(model, split, canvas, device, runtime)
        self.layer, self.scale = penultimate(backbone)
        self.computed = 0  # images this process passed through the backbone (the rest came from the file)
        self.index, self.features = self._load()

    def _load(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.path.exists():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
                return saved["index"], saved["features"]
            except Exception:  # noqa: BLE001  unreadable: recomputed, the atomic rewrite replaces it
                pass
        return torch.zeros(0, dtype=torch.long), None

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Features ``[len(indices), D]`` (float32, CPU) of the split's images at ``indices``."""
        indices = indices.to(torch.long).cpu()
        missing = torch.from_numpy(_setdiff(indices.numpy(), self.index.numpy()))
        bar = tqdm(total=len(missing), desc=f"features {self.model.name} {self.split.name}/{self.split.split}",
                   disable=not self.progress or len(missing) == 0, leave=False, unit="img")
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start:start + CHUNK]
            self._add(chunk, self._compute(chunk, bar))
        bar.close()
        where = {int(k): i for i, k in enumerate(self.index.tolist())}
        return self.features[torch.tensor([where[int(k)] for k in indices.tolist()], dtype=torch.long)]

    def _add(self, index: torch.Tensor, features: torch.Tensor) -> None:
        self.index = torch.cat([self.index, index])
        self.features = features if self.features is None else torch.cat([self.features, features])
        atomic_torch_save({"index": self.index, "features": self.features, "version": FEATURE_VERSION}, self.path)

    @torch.no_grad()
    def _compute(self, index: torch.Tensor, bar) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = self.layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
        mean = torch.tensor(self.model.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.model.std, device=self.device).view(1, 3, 1, 1)
        out = []
        try:
            for start in range(0, len(index), BATCH):
                part = index[start:start + BATCH]
                padded = torch.cat([part, part[:1].repeat(BATCH - len(part))]) if len(part) < BATCH else part
                x = self.split.images[padded].to(self.device).float().div_(255)
                x = resize(x, self.canvas)
                captured.clear()
                self.backbone(((x - mean) / std).contiguous(memory_format=torch.channels_last))
                feats = captured[-1].float().flatten(1) * self.scale
                out.append(feats[:len(part)].cpu())
                self.computed += len(part)
                bar.update(len(part))
        finally:
            hook.remove()
        return torch.cat(out) if out else torch.zeros(0, 0)


def resize(images: torch.Tensor, canvas: int) -> torch.Tensor:
    """Images in [0, 1] resized to ``canvas`` x ``canvas`` as the authors' probe does (``Resize((224, 224))``,
    bilinear); antialiased like PIL, which only matters when shrinking."""
    if images.shape[-1] == canvas and images.shape[-2] == canvas:
        return images
    return F.interpolate(images, size=(canvas, canvas), mode="bilinear", antialias=True, align_corners=False)


def _setdiff(wanted, have):
    import numpy as np

    return np.setdiff1d(np.unique(wanted), have, assume_unique=False).astype(np.int64)
