"""The smoke profile's source architecture: a small CNN for a 64 px canvas and 100 classes.

It stands in for an ImageNet classifier so the whole study runs offline on a CPU in minutes:
64 px canvas instead of 224, 100 source classes instead of 1000. The network is only the
architecture; it is pretrained on the generated source task, pruned and quantized (and its
``smallcnn/*`` names registered) by ``vpcost_utils.built.smallcnn_pretrain``.
"""

from __future__ import annotations

import torch
from torch import nn

CANVAS = 64
NUM_SOURCE_CLASSES = 100


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SmallCNN(nn.Module):
    """Six conv blocks (BN, ReLU; four of stride 2), global average pooling, a linear head.

    The two stride-1 blocks at 8 and 4 px widen the receptive field to the whole 64-px canvas, so a
    prompt in the border can interact with the image in the centre, as in an ImageNet ResNet.
    """

    def __init__(self, num_classes: int = NUM_SOURCE_CLASSES, width: int = 24):
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2),
                                      _block(4 * w, 4 * w, 1), _block(4 * w, 8 * w, 2), _block(8 * w, 8 * w, 1))
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))
