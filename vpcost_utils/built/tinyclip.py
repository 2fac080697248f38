"""The ``tinyclip/*`` names: the smoke profile's CLIP, pretrained on generated images.

The model class is ``models.clip_models.ClipModel``; its pretraining on the generated colour-shape
captions (and the ``synth_colours`` target) is ``vpcost_utils.clip.tiny``. This module only ties the
two together in the model registry, so that ``models/`` does not depend on the CLIP training code.
"""

from __future__ import annotations

from ..models import ModelEntry, SourceModel, register
from ..models.clip_models import _source_model, structured_prune


def _load_tiny(entry: ModelEntry) -> SourceModel:
    from ..clip.tiny import load_tinyclip  # lazy: pretrains and caches on first use

    model = load_tinyclip()
    if entry.name.endswith("prune-50"):
        model = structured_prune(model, 0.5)
    return _source_model(entry, model, pretrained_on="generated colour-shape captions (vpcost_utils.clip.tiny)")


register(ModelEntry(name="tinyclip/dense", arch="tinyclip", compression="dense", method="dense", loader=_load_tiny,
                    source="built and pretrained here on generated data", obtainable="yes", license="MIT (ours)",
                    notes="smoke-profile stand-in for CLIP: same code path, 64 px, word-level tokenizer"))
register(ModelEntry(name="tinyclip/prune-50", arch="tinyclip", compression="structured", method="l1-structured",
                    loader=_load_tiny, parent="tinyclip/dense", source="tinyclip/dense pruned here", obtainable="yes",
                    license="MIT (ours)",
                    notes="structured L1 pruning to 50 % of block params (stand-in for UPop 2x), no retraining"))
