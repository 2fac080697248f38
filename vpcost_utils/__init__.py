"""vpcost: the hidden cost of model compression, measured through visual prompting.

``paths`` is imported first so TORCH_HOME and HF_HOME point under VPCOST_HOME before torch.hub
or huggingface_hub read them, and ``cpu_pin.apply()`` runs before anything imports torch, so PyTorch, MKL and
oneDNN read the arithmetic pin (``VPCOST_ARITHMETIC``, default avx2) when they first dispatch a kernel.
``pretrain`` registers the models the package trains itself
(``smallcnn/*``, ``tinyclip/*``) next to the registry's own families, so every
``vpcost_utils.models.create_model`` call sees them.
"""

from . import (
    cpu_pin,
    paths,  # noqa: F401  (must come first, see above)
)

cpu_pin.apply()

from . import pretrain  # noqa: E402, F401  (after the pin: it imports torch; registers smallcnn/* and tinyclip/*)
from .config import RunSpec  # noqa: E402

__version__ = "0.1.0"
__all__ = ["RunSpec", "__version__"]
