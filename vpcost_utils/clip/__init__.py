"""Visual prompting of CLIP (paper Section 3.2.2): zero-shot text head, ILM-VP and two VP set-ups."""

from . import tiny  # noqa: F401  (registers the synth_colours CLIP smoke target)
from .classnames import CLASS_NAME_SOURCES, class_name_source, class_names_for
from .clip_prompts import BorderPrompt, PadPrompter, default_pad
from .head import clip_logits, text_embeddings
from .images import ClipImages, load_clip_split
from .schedules import bahng_warmup, cosine_lr
from .setups import SETUPS, ClipSetup
from .templates import BAHNG_TEMPLATE, ILM_TEMPLATES, clean_classname
from .train_clip import BAHNG_ORIGINAL, run_clip
from .transform import output_geometry, resize_crop

__all__ = ["BAHNG_ORIGINAL", "BAHNG_TEMPLATE", "CLASS_NAME_SOURCES", "SETUPS", "BorderPrompt", "ClipImages",
           "ClipSetup", "ILM_TEMPLATES", "PadPrompter", "bahng_warmup", "class_name_source", "class_names_for",
           "clean_classname", "clip_logits", "cosine_lr", "default_pad", "load_clip_split", "output_geometry",
           "resize_crop", "run_clip", "text_embeddings"]
