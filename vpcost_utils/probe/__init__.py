"""Linear probing: the transfer method beside visual prompting that reads the frozen features directly.

``features`` computes and caches each model's penultimate features per image; ``linear`` trains the head
(``method="lp"``, faithful to the authors' ``linear_probing.py``).
"""

from .linear import run_lp

__all__ = ["run_lp"]
