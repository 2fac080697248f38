"""The three named CLIP prompting set-ups, picked by ``RunSpec.method`` (task ``"clip"``).

All three train one additive prompt on the CLIP-normalised image with SGD (momentum 0.9, lr 40,
no weight decay) and a per-step cosine schedule; they differ in the prompt, the text head, the label
mapping and the warm-up:

============== ===================== ============================= ================== =========
method          prompt                text head                     mapping            warm-up
============== ===================== ============================= ================== =========
``ilm-vp``      zero-init border      81 templates x K              ILM every epoch    none
``single-tp-vp`` zero-init border     "This is a photo of a {}."    identity           none
``vp``          N(0,1) pads (Bahng)   "This is a photo of a {}"     identity           Bahng's
============== ===================== ============================= ================== =========

- ``ilm-vp``: the authors' ``experiments/ilm_clip.py`` (landskape-ai/Reprogram_LT).
- ``single-tp-vp``: ILM-VP's own CLIP VP baseline, ``experiments/clip/single_tp_vp.py`` of
  OPTML-Group/ILM-VP, also in the fork's history until commit d921fda: ``AdditiveVisualPrompt``
  (zero init, 30-px border), template 0 of its list ("This is a photo of a {}.", with the period),
  the K logits used as they are, ``CosineAnnealingLR`` per step, no warm-up. The most likely
  set-up of the paper's "VP" column: it is the only non-ILM CLIP prompting code the fork ever held
  (no commit has Bahng's ``PadPrompter``), it shares every hyper-parameter and the loader with the
  fork's ILM-VP script, and Table 2 pairs VP with ILM-VP as ILM-VP's own CLIP table does.
- ``vp``: Bahng et al.'s ``PadPrompter`` (``hjbahng/visual_prompting``): four N(0,1) pads, one
  template without a period, linear warm-up of 1000 steps (capped at a tenth of the run).
"""

from __future__ import annotations

from dataclasses import dataclass

from .templates import BAHNG_TEMPLATE, ILM_TEMPLATES


@dataclass(frozen=True)
class ClipSetup:
    """What a CLIP method trains and how."""

    prompt: str  # "border" (zero-init additive frame) or "pads" (Bahng's N(0,1) PadPrompter)
    templates: tuple[str, ...]
    ilm: bool  # re-map text rows to classes every epoch (else row c is class c)
    warmup: bool  # Bahng's linear warm-up before the cosine
    reference: str


SETUPS: dict[str, ClipSetup] = {
    "ilm-vp": ClipSetup("border", ILM_TEMPLATES, True, False,
                        "landskape-ai/Reprogram_LT experiments/ilm_clip.py"),
    "single-tp-vp": ClipSetup("border", (ILM_TEMPLATES[0],), False, False,
                              "OPTML-Group/ILM-VP experiments/clip/single_tp_vp.py"),
    "vp": ClipSetup("pads", (BAHNG_TEMPLATE,), False, True, "hjbahng/visual_prompting main_clip.py"),
}
