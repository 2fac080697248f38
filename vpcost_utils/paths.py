"""One place for every cache and data root.

``VPCOST_HOME`` (default ``~/.cache/vpcost``) holds everything we download or derive:
``datasets/`` (raw torchvision / HF downloads), ``tensors/`` (decoded uint8 caches),
``checkpoints/`` (compressed-model files the user places or we download), ``torch/`` and ``hf/``.
``TORCH_HOME`` and ``HF_HOME`` are pointed under it unless the user already set them, so that
torch.hub, torchvision and timm weights land where we look for them and are found offline later.
This module must be imported before torch.hub or huggingface_hub read those variables; the
package ``__init__`` imports it first for that reason.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The vpcost cache root, ``$VPCOST_HOME`` or ``~/.cache/vpcost``."""
    return Path(os.environ.get("VPCOST_HOME", Path.home() / ".cache" / "vpcost")).expanduser()


def datasets_dir() -> Path:
    """Where raw datasets are downloaded to or must be placed (``$VPCOST_DATA`` overrides)."""
    return Path(os.environ.get("VPCOST_DATA", home() / "datasets")).expanduser()


def tensors_dir() -> Path:
    """Where decoded uint8 dataset tensors are cached."""
    return home() / "tensors"


def checkpoints_dir() -> Path:
    """Where compressed-model checkpoint files are downloaded to or must be placed."""
    return Path(os.environ.get("VPCOST_CHECKPOINTS", home() / "checkpoints")).expanduser()


def models_dir() -> Path:
    """Where models the package trains itself (the smoke source model) are cached."""
    return home() / "models"


def features_dir() -> Path:
    """Where the linear probe's per-image feature caches live (``$VPCOST_FEATURES`` overrides)."""
    return Path(os.environ.get("VPCOST_FEATURES", home() / "features")).expanduser()


def set_library_homes() -> None:
    """Point TORCH_HOME and HF_HOME under VPCOST_HOME unless the user set them already."""
    os.environ.setdefault("TORCH_HOME", str(home() / "torch"))
    os.environ.setdefault("HF_HOME", str(home() / "hf"))


set_library_homes()
