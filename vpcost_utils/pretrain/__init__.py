"""The smoke profile's source models, pretrained here on generated data, and their registry names.

``models/`` holds architectures and loaders of published checkpoints and knows no training loop or
dataset; the models the package trains itself live here, next to the data they are trained on:
``smallcnn`` (the small CNN, pretrained on ``data.synthetic``'s 100-class task, then pruned and
LSQ-quantized) and ``tinyclip`` (the small CLIP, pretrained by ``clip.tiny``). Importing this package
registers ``smallcnn/*`` and ``tinyclip/*``; ``import vpcost_utils`` does so, so any
``vpcost_utils.models.create_model`` call sees them.
"""

from . import (
    smallcnn,  # noqa: F401  (smallcnn/dense, /prune-*, /w*a*)
    tinyclip,  # noqa: F401  (tinyclip/dense, /prune-50)
)
