"""Source models by name: ``create_model("resnet50/acdc-90")``, ``list_models("resnet50/*")``.

Importing this package registers every family (one module per family, as in timm).
"""

from . import (
    clip_models,  # noqa: F401  (CLIP ViT-L/14@336, UPop 2x/4x and tinyclip)
    resnet,  # noqa: F401  (resnet18/34/50 dense and sparse entries)
    smallcnn,  # noqa: F401  (the smoke profile's source models)
    vvtq,  # noqa: F401  (deit_tiny / swin_tiny: VVTQ w4a4..w2a2, fp32, timm)
)
from ._registry import ModelEntry, SourceModel, create_model, get_entry, list_models, register

__all__ = ["ModelEntry", "SourceModel", "create_model", "get_entry", "list_models", "register"]
