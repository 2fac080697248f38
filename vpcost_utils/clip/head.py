"""CLIP's zero-shot text head: one normalised text embedding per (template, class), logits = scale * cosine."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .templates import prompts_for


@torch.no_grad()
def text_embeddings(model, classnames: list[str], templates: tuple[str, ...], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings ``[T * K, D]``, template-major (row ``t * K + c``).

    Every prompt is tokenised before any is encoded, so a class name the tokenizer rejects fails
    here, before training starts.
    """
    if model.tokenizer is None:
        raise ValueError("this CLIP model has no tokenizer attached")
    tokens = model.tokenizer(prompts_for(classnames, templates))
    device = next(model.parameters()).device
    chunks = [model.encode_text(tokens[i:i + batch_size].to(device)).float() for i in range(0, len(tokens), batch_size)]
    return F.normalize(torch.cat(chunks), dim=-1)


#: Upper bound of CLIP's log temperature: every reference (the fork's ``ilm_clip.py``, ILM-VP's
#: ``single_tp_vp.py``, Bahng's ``main_clip.py``) clamps ``logit_scale`` to [0, 4.6052] after each step.
MAX_LOGIT_SCALE = 4.6052


def clip_logits(model, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``logit_scale.exp() * normalize(image features) @ text.T`` for CLIP-normalised ``images``.

    The scale is clamped as the references clamp it (OpenAI's models store ln 100, inside the bound; a
    fine-tune that stored more is scaled down; the references did so from their second step on).
    """
    features = F.normalize(model.encode_image(images).float(), dim=-1)
    return model.logit_scale.float().clamp(0, MAX_LOGIT_SCALE).exp() * features @ text.T
