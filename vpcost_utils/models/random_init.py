"""Randomly initialised ImageNet architectures by short name (no weights): what the cost planner and the bench time."""

from __future__ import annotations

from torch import nn

from ..errors import UnknownNameError
from . import smallcnn

TORCHVISION = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50"}
TIMM = {"deit_tiny": "deit_tiny_patch16_224", "swin_tiny": "swin_tiny_patch4_window7_224",
        "efficientnet_lite0": "tf_efficientnet_lite0", "efficientnet_lite1": "tf_efficientnet_lite1",
        "efficientnet_lite2": "tf_efficientnet_lite2", "clip_vit_l14_336": "vit_large_patch14_clip_336"}
#: (canvas px, source classes) where not ImageNet's (224, 1000): the smoke profile's small CNN, the bench's smallest.
SHAPES = {"smallcnn": (smallcnn.CANVAS, smallcnn.NUM_SOURCE_CLASSES)}


def random_architecture(arch: str) -> nn.Module:
    """``arch`` (``resnet18``, ``deit_tiny``, ...) with random weights; names the valid ones otherwise."""
    import timm  # heavy optional imports: only the planner's --measure and the bench build one
    import torchvision

    if arch == "smallcnn":
        return smallcnn.SmallCNN()
    if arch in TORCHVISION:
        return getattr(torchvision.models, TORCHVISION[arch])()
    if arch in TIMM:
        return timm.create_model(TIMM[arch], pretrained=False)
    raise UnknownNameError("architecture to measure", arch, ["smallcnn", *TORCHVISION, *TIMM])


def canvas_and_classes(arch: str) -> tuple[int, int]:
    """The input size ``arch`` is built for and its number of source classes."""
    return SHAPES.get(arch, (224, 1000))
