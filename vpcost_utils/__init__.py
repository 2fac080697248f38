"""vpcost: the hidden cost of model compression, measured through visual prompting.

``paths`` is imported first so TORCH_HOME and HF_HOME point under VPCOST_HOME before torch.hub
or huggingface_hub read them.
"""

from . import paths  # noqa: F401  (must come first, see above)
from .config import RunSpec

__version__ = "0.1.0"
__all__ = ["RunSpec", "__version__"]
