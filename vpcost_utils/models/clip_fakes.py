"""Fake CLIP ViT-L/14@336 checkpoints in their published layouts (OpenAI's state dict, UPop's files).

``upop_file`` and ``openai_state_dict`` take a model and return what ``torch.save`` should write;
``clip_bpe_tokenizer`` trains a byte-level BPE with CLIP's special tokens; ``write_fake`` puts a registry
entry's file where ``clip_models.py``'s loaders look (the rehearsal calls it through the entry's ``fake``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import paths
from .._io import atomic_torch_save
from ._registry import ModelEntry
from .clip_models import UPOP_KEEP, ClipModel, structured_prune

#: OpenAI ViT-L/14@336px, every size ``config_from_state_dict`` reads.
CLIP_L14_336 = {"vision_width": 1024, "patch_size": 14, "resolution": 336, "embed_dim": 768, "context_length": 77,
                "vocab_size": 49408, "text_width": 768, "vision_blocks": [(1024, 4096)] * 24,
                "text_blocks": [(768, 3072)] * 12, "vision_layers": 24, "text_layers": 12}


def upop_file(model: nn.Module) -> dict[str, Any]:
    """A checkpoint as UPop saves it: {"model": weights + momentum copies of both towers + queues}."""
    sd = dict(model.state_dict())
    for k, v in model.state_dict().items():
        for prefix in ("visual.", "transformer.", "token_embedding.", "ln_final."):
            if k.startswith(prefix):
                sd[prefix[:-1] + "_m." + k[len(prefix):]] = v  # same tensor: torch.save stores it once
    sd["text_projection_m"] = model.text_projection.detach()
    sd["positional_embedding_m"] = model.positional_embedding.detach()
    dim = model.text_projection.shape[1]
    sd["image_queue"], sd["text_queue"] = torch.randn(dim, 64), torch.randn(dim, 64)
    sd["idx_queue"], sd["ptr_queue"] = torch.full((1, 64), -100), torch.zeros(1, dtype=torch.long)
    return {"model": sd}


def openai_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """OpenAI CLIP's weights with the scalars its TorchScript archive stores beside them."""
    sd = dict(model.state_dict())
    sd.update({"input_resolution": torch.tensor(model.cfg["resolution"]),
               "context_length": torch.tensor(model.cfg["context_length"]),
               "vocab_size": torch.tensor(model.cfg["vocab_size"])})
    return sd


def clip_bpe_tokenizer(corpus: list[str]) -> Any:
    """Byte-level BPE (no unknown text); ``<|startoftext|>`` and ``<|endoftext|>`` are the largest ids, as in CLIP."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])  # appended: the two largest ids
    return tok


def write_fake(entry: ModelEntry, seed: int = 0) -> str:
    """Write CLIP entry ``entry``'s file with random weights in its published layout; returns the layout.

    The tokenizer file the loaders also need is written by the rehearsal (``rehearsal/fakes.py``): its
    vocabulary is trained on the prompt templates and the datasets' class names, which models/ cannot see.
    """
    folder = paths.checkpoints_dir()
    torch.manual_seed(seed)
    model = ClipModel(CLIP_L14_336)
    tag = entry.name.split("/", 1)[1]
    if tag == "openai":
        atomic_torch_save(openai_state_dict(model), folder / entry.filename)
        return "OpenAI CLIP state dict (+ input_resolution / context_length / vocab_size)"
    if tag in UPOP_KEEP:
        model = structured_prune(model, UPOP_KEEP[tag])
    atomic_torch_save(upop_file(model), folder / entry.filename)
    return "UPop {'model': ...} with momentum copies and queues" + (", sliced blocks" if tag in UPOP_KEEP else "")
