"""Cross-modal reprogramming: image classifiers classify text and DNA (Neekhara et al.; paper Section 3.2.4)."""

from .label_map import assign_labels, labels_per_class, mapped_logits, noise_order
from .reprogram import TokenReprogrammer, canvas_penalty, default_patch_size
from .train_crossmodal import run_crossmodal

__all__ = ["TokenReprogrammer", "assign_labels", "canvas_penalty", "default_patch_size", "labels_per_class",
           "mapped_logits", "noise_order", "run_crossmodal"]
