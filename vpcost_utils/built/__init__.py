"""Models built here: the ones the package trains, compresses or recovers itself, and the code that builds them.

``models/`` holds architectures and loaders of published checkpoints and knows no training loop or
dataset; the models built here live here, next to what builds them:

- ``smallcnn`` (the smoke CNN, pretrained on ``data.synthetic``'s 100-class task, then pruned and
  LSQ-quantized: ``smallcnn_pretrain``) and ``tinyclip`` (the small CLIP, pretrained by ``clip.tiny``);
- EfficientNet-Lite0 pruned / PTQ-quantized here without retraining (``efficientnet_lite_compressed``) and
  sparse / low-bit recovered by distillation from the dense model (``efficientnet_lite_recovered``,
  ``distill``: the distillation loop, ``natural_images``: its photograph crops, ``reconstruct``,
  ``agreement``: top-1 agreement with the dense model; ``python -m vpcost_utils.built.recover``).

Importing this package registers ``smallcnn/*``, ``tinyclip/*`` and the built EfficientNet-Lite0 entries;
``import vpcost_utils`` does so, so any ``vpcost_utils.models.create_model`` call sees them.
"""

from . import (
    _docs_photos,  # noqa: F401  (adds the Debian photographs' section to docs/models.md)
    efficientnet_lite_compressed,  # noqa: F401  (EfficientNet-Lite0 pruned / PTQ-quantized here, no retraining)
    efficientnet_lite_recovered,  # noqa: F401  (EfficientNet-Lite0 sparse / low-bit, recovered by distillation here)
    smallcnn_pretrain,  # noqa: F401  (smallcnn/dense, /prune-*, /w*a*)
    tinyclip,  # noqa: F401  (tinyclip/dense, /prune-50)
)
