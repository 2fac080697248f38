"""Fake checkpoints and datasets in the published layouts, for rehearsals and loader tests.

Each family's writer lives beside the loader it fakes (``models/resnet_fakes.py``, ``models/vvtq_fakes.py``,
``models/clip_fakes.py``, ``data/vision_fakes.py``, ``data/text_fakes.py``), and each registry entry names
its writer (``ModelEntry.fake``, ``DatasetInfo.fake``, ``TextInfo.fake``: "module:function"). This module
only looks the writer up and calls it, and writes the one file no family owns alone: the CLIP tokenizer,
whose vocabulary is trained on the prompt templates and every dataset's class names. Everything is seeded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def _writer(reference: str | None, what: str) -> Callable[..., Any]:
    if reference is None:
        raise KeyError(f"no fake writer for {what}")
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


def write_dataset(name: str, seed: int = 0) -> list[str]:
    """Write dataset ``name`` where its loader looks (``paths.datasets_dir()``); returns the layouts written."""
    from ..data import get_dataset_info
    from ..data.text import TEXT_DATASETS

    info = TEXT_DATASETS.get(name) or get_dataset_info(name)
    return _writer(info.fake, f"dataset {name!r}")(name, seed)


def write_checkpoint(name: str, seed: int = 0) -> str:
    """Write registry model ``name``'s file(s) with random weights in its published layout; returns the layout."""
    from ..models import get_entry

    entry = get_entry(name)
    if entry.arch == "clip_vit_l14_336":
        write_clip_tokenizer()
    return _writer(entry.fake, f"model {name!r}")(entry, seed)


def write_clip_tokenizer() -> None:
    """The byte-level BPE file the CLIP loaders read, trained on the templates and every class name here."""
    from ..models.clip_fakes import clip_bpe_tokenizer
    from ..models.clip_tokenizers import tokenizer_file_hint

    hint = tokenizer_file_hint()
    if not hint.exists():
        hint.parent.mkdir(parents=True, exist_ok=True)
        clip_bpe_tokenizer(_clip_corpus()).save(str(hint))


def _clip_corpus() -> list[str]:
    """Text the fake CLIP tokenizer is trained on: the prompt templates and every class name here."""
    from ..clip import templates
    from ..data.vision_fakes import CALTECH_FOLDERS, CIFAR_CLASSES, DTD_CLASSES, EUROSAT_CLASSES, PET_BREEDS

    texts = [templates.BAHNG_TEMPLATE, *templates.CLIP_IMAGENET_TEMPLATES]
    names = [*CIFAR_CLASSES, *DTD_CLASSES, *PET_BREEDS, *EUROSAT_CLASSES, *CALTECH_FOLDERS]
    return texts + [n.replace("_", " ") for n in names] * 3
