"""tinyclip: the smoke profile's CLIP, built here and pretrained for seconds on generated images.

Architecture: ``ClipModel`` (OpenAI layout) at 64 px, patch 8, width 64, 2 blocks per tower, and a
word-level tokenizer over the template words plus the generated vocabulary. Pretraining data: the
smoke source task's images (``data.synthetic.source_split``, 10 shapes x 10 colours) with captions
that name the colour, the shape or both inside one of the 81 templates; the contrastive loss treats
every caption true of an image as a positive. After its short pretraining tinyclip knows colours well
and shapes hardly at all (zero-shot on ``synth_shapes`` is at chance), so this module also
registers the CLIP smoke target ``synth_colours``: 8 colour classes named by their colour, small
objects of any shape on noisy backgrounds, 32 px. Zero-shot there is meaningful but imperfect,
which leaves room for a visual prompt. Cached under ``paths.models_dir()``: trained once per
machine (about a minute on 2 busy CPU cores).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from .. import paths
from .._io import atomic_torch_save
from ..data.base import DatasetInfo, ImageSplit, register_dataset
from ..data.synthetic import COLOUR_NAMES, HUES, SHAPES, render, source_split
from ..models.clip_models import ClipModel, build_clip
from ..models.clip_tokenizers import WordTokenizer
from .templates import ILM_TEMPLATES

VERSION = 1
RESOLUTION, PATCH, WIDTH, LAYERS, CONTEXT = 32, 8, 64, 2, 20
EXTRA_WORDS = ("object", "on", "light", "dark", "this", "is", "thing", "shape")


def tiny_tokenizer() -> WordTokenizer:
    words = {w for t in ILM_TEMPLATES for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9{}]", t.lower())}
    words |= set(COLOUR_NAMES) | set(SHAPES) | set(EXTRA_WORDS)
    return WordTokenizer(sorted(words), buckets=64, context_length=CONTEXT)


def tiny_config(vocab_size: int) -> dict:
    blocks = [(WIDTH, 4 * WIDTH)] * LAYERS
    return {"vision_width": WIDTH, "patch_size": PATCH, "resolution": RESOLUTION, "embed_dim": WIDTH,
            "context_length": CONTEXT, "vocab_size": vocab_size, "text_width": WIDTH, "vision_blocks": blocks,
            "text_blocks": blocks, "vision_layers": LAYERS, "text_layers": LAYERS}


def _captions(labels: torch.Tensor, g: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """A caption per image naming colour+shape, shape or colour, and its (colour, shape) claim (-1 = any)."""
    colour, shape = labels % 10, labels // 10
    form = torch.randint(0, 3, (len(labels),), generator=g)
    template = torch.randint(0, len(ILM_TEMPLATES), (len(labels),), generator=g)
    texts, claims = [], []
    for c, s, f, t in zip(colour.tolist(), shape.tolist(), form.tolist(), template.tolist(), strict=True):
        name = (f"{COLOUR_NAMES[c]} {SHAPES[s]}", SHAPES[s], f"{COLOUR_NAMES[c]} object")[f]
        texts.append(ILM_TEMPLATES[t].format(name))
        claims.append((c if f != 1 else -1, s if f != 2 else -1))
    return texts, torch.tensor(claims)


def pretrain_tinyclip(steps: int = 200, batch: int = 64, seed: int = 0) -> ClipModel:
    """Build and contrastively pretrain tinyclip on generated data (deterministic for a seed)."""
    tok = tiny_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ClipModel(tiny_config(tok.vocab_size))
        model.tokenizer = tok
        data = source_split("train", per_class=12, size=RESOLUTION, seed=seed)
        mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
        std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
        model.train()
        for _ in range(steps):
            index = torch.randint(0, len(data), (batch,), generator=g)
            labels = data.labels[index]
            images = (data.images[index].float() / 255 - mean) / std
            texts, claims = _captions(labels, g)
            colour, shape = labels % 10, labels // 10
            # positive[i, j]: caption j is true of image i (it may name only the colour or only the shape)
            positive = (((claims[None, :, 0] == -1) | (claims[None, :, 0] == colour[:, None]))
                        & ((claims[None, :, 1] == -1) | (claims[None, :, 1] == shape[:, None]))).float()
            img = F.normalize(model.encode_image(images), dim=-1)
            txt = F.normalize(model.encode_text(tok(texts)), dim=-1)
            logits = model.logit_scale.exp() * img @ txt.T
            loss = (F.cross_entropy(logits, positive / positive.sum(1, keepdim=True))
                    + F.cross_entropy(logits.T, positive.T / positive.T.sum(1, keepdim=True))) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)
    model.eval()
    return model


def load_tinyclip() -> ClipModel:
    """The cached pretrained tinyclip, pretraining and caching it on first use."""
    path = paths.models_dir() / f"tinyclip-v{VERSION}.pt"
    if path.exists():
        model = build_clip(torch.load(path, map_location="cpu", weights_only=True))
        model.tokenizer = tiny_tokenizer()
        return model
    model = pretrain_tinyclip()
    atomic_torch_save(model.state_dict(), path)
    return model


#: The colour classes of ``synth_colours`` (indices into ``data.synthetic.COLOUR_NAMES``).
COLOUR_CLASSES = (0, 2, 3, 5, 6, 7, 8, 1)


def _colours_task(info: DatasetInfo, split: str, root: str | None, size: int) -> ImageSplit:
    g = torch.Generator().manual_seed(4242 if split == "train" else 4243)
    per_class = 40 if split == "train" else 30
    labels = torch.arange(len(COLOUR_CLASSES)).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=g)]
    hue = torch.tensor(HUES)[torch.tensor(COLOUR_CLASSES)[labels]] + (torch.rand(len(labels), generator=g) - 0.5) * 0.06
    shape = torch.randint(0, len(SHAPES), (len(labels),), generator=g)
    images = render(shape, hue % 1.0, size, g, scale=(0.2, 0.5), jitter=0.4, noise=0.25)
    return ImageSplit(info.name, split, images, labels, [COLOUR_NAMES[c] for c in COLOUR_CLASSES])


register_dataset(DatasetInfo("synth_colours", _colours_task, input_size=RESOLUTION, num_classes=len(COLOUR_CLASSES),
                             offline=True, notes="generated CLIP smoke target: 8 colours, random shapes, "
                                                 "320 train / 240 test (registered by vpcost_utils.clip)"))
