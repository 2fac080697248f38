"""vpcost: the hidden cost of model compression, measured through visual prompting.

``paths`` is imported first so TORCH_HOME and HF_HOME point under VPCOST_HOME before torch.hub
or huggingface_hub read them, and ``cpu_pin.apply()`` runs before anything imports torch, so PyTorch, MKL and
oneDNN read the arithmetic pin (``VPCOST_ARITHMETIC``, default avx2) when they first dispatch a kernel.
``built`` registers the models the package builds itself (``smallcnn/*``, ``tinyclip/*``, EfficientNet-Lite0
compressed or recovered here) next to the registry's own families, so every ``vpcost_utils.models.create_model``
call sees them. ``_moved`` keeps the module paths of before the 2026-12 move (``python -m vpcost_utils.plan``, ...)
working.
"""

from . import (
    cpu_pin,
    paths,  # noqa: F401  (must come first, see above)
)

cpu_pin.apply()

from . import (  # noqa: E402  (after the pin: these import torch)
    _moved,
    built,  # noqa: F401  (registers smallcnn/*, tinyclip/* and the EfficientNet-Lite0 entries built here)
)
from .config import RunSpec, __version__  # noqa: E402

_moved.install()

__all__ = ["RunSpec", "__version__"]
