"""Visual prompting of CLIP (paper Section 3.2.2): zero-shot text head, ILM-VP and Bahng VP set-ups."""

from . import tiny  # noqa: F401  (registers the synth_colours CLIP smoke target)
from .head import clip_logits, text_embeddings
from .prompts import BorderPrompt, PadPrompter, default_pad
from .schedules import bahng_warmup, cosine_lr
from .templates import BAHNG_TEMPLATE, ILM_TEMPLATES, clean_classname
from .train import BAHNG_ORIGINAL, run_clip

__all__ = ["BAHNG_ORIGINAL", "BAHNG_TEMPLATE", "BorderPrompt", "ILM_TEMPLATES", "PadPrompter", "bahng_warmup",
           "clean_classname", "clip_logits", "cosine_lr", "default_pad", "run_clip", "text_embeddings"]
