"""vpcost: the hidden cost of model compression, measured through visual prompting.

``paths`` is imported first so TORCH_HOME and HF_HOME point under VPCOST_HOME before torch.hub
or huggingface_hub read them. ``built`` registers the models the package builds itself
(``smallcnn/*``, ``tinyclip/*``, EfficientNet-Lite0 compressed or recovered here) next to the
registry's own families, so every ``vpcost_utils.models.create_model`` call sees them. ``_moved``
keeps the module paths of before the 2026-12 move (``python -m vpcost_utils.plan``, ...) working.
"""

from . import (
    _moved,
    built,  # noqa: F401  (registers smallcnn/*, tinyclip/* and the EfficientNet-Lite0 entries built here)
    paths,  # noqa: F401  (must come first, see above)
)
from .config import RunSpec, __version__

_moved.install()

__all__ = ["RunSpec", "__version__"]
