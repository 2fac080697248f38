"""vpcost: the hidden cost of model compression, measured through visual prompting.

``paths`` is imported first so TORCH_HOME and HF_HOME point under VPCOST_HOME before torch.hub
or huggingface_hub read them. ``pretrain`` registers the models the package trains itself
(``smallcnn/*``, ``tinyclip/*``) next to the registry's own families, so every
``vpcost_utils.models.create_model`` call sees them.
"""

from . import (
    paths,  # noqa: F401  (must come first, see above)
    pretrain,  # noqa: F401  (registers smallcnn/* and tinyclip/*)
)
from .config import RunSpec

__version__ = "0.1.0"
__all__ = ["RunSpec", "__version__"]
