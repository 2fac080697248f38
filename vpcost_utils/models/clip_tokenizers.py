"""Tokenizers for CLIP text: OpenAI's BPE (real models) and a word-level one (tinyclip).

Both return ``[N, context_length]`` int64 ids with the end-of-text token as the sequence's largest
id (``ClipModel.encode_text`` pools there) and raise ``SpecError`` before any training when a text
cannot be represented faithfully: characters outside the tokenizer's alphabet, or a prompt longer
than the context (CLIP would silently cut it).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import torch

from .. import paths
from ..errors import MissingFileError, SpecError

CLIP_TOKENIZER_REPO = "openai/clip-vit-large-patch14-336"


def _reject(bad: list[str], why: str) -> None:
    if bad:
        shown = ", ".join(repr(b) for b in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise SpecError(f"CLIP's tokenizer cannot take {len(bad)} prompt(s) ({why}): {shown}. Rename these classes "
                        "(the dataset's class names are used as the zero-shot text) and run again.")


class ClipBpeTokenizer:
    """OpenAI CLIP's BPE through the ``tokenizers`` library (``tokenizer.json`` of the HF CLIP repo).

    Looked up in ``paths.checkpoints_dir()/clip_tokenizer.json`` first, then the Hugging Face cache
    (downloaded there when the network allows). Loaded on first use, so a model builds without it.
    """

    def __init__(self, context_length: int = 77):
        self.context_length = context_length
        self._tok = None

    def _load(self):
        if self._tok is None:
            from ..hub import hub_tokenizer

            try:
                self._tok = hub_tokenizer(CLIP_TOKENIZER_REPO, tokenizer_file_hint())
            except FileNotFoundError as exc:
                raise MissingFileError("CLIP BPE tokenizer", "tokenizer.json",
                                       f"https://huggingface.co/{CLIP_TOKENIZER_REPO} (save it as clip_tokenizer.json)",
                                       str(paths.checkpoints_dir())) from exc
        return self._tok

    def __call__(self, texts: list[str]) -> torch.Tensor:
        tok = self._load()
        sot, eot = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
        _reject([t for t in texts if not t.isprintable()], "non-printable characters")
        rows = [[sot] + tok.encode(t, add_special_tokens=False).ids + [eot] for t in texts]
        _reject([t for t, r in zip(texts, rows, strict=True) if eot in r[1:-1] or len(r) == 2], "unknown or empty text")
        _reject([t for t, r in zip(texts, rows, strict=True) if len(r) > self.context_length],
                f"longer than {self.context_length} tokens")
        return _pad(rows, self.context_length)


class WordTokenizer:
    """Word-level tokenizer of tinyclip: a fixed word list, unknown words hashed into buckets.

    Ids: 0 pad, 1 start, words, hash buckets, then end-of-text last (the largest id). Text is
    lower-cased and split into words and single punctuation marks; only printable ASCII is accepted.
    """

    def __init__(self, words: list[str], buckets: int = 64, context_length: int = 32):
        self.words = sorted(set(words))
        self.index = {w: i + 2 for i, w in enumerate(self.words)}
        self.buckets = buckets
        self.context_length = context_length
        self.eot = 2 + len(self.words) + buckets
        self.vocab_size = self.eot + 1

    def _id(self, word: str) -> int:
        if word in self.index:
            return self.index[word]
        return 2 + len(self.words) + zlib.crc32(word.encode()) % self.buckets

    def __call__(self, texts: list[str]) -> torch.Tensor:
        _reject([t for t in texts if not (t.isascii() and t.isprintable())], "only printable ASCII is known")
        rows = [[1] + [self._id(w) for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", t.lower())] + [self.eot]
                for t in texts]
        _reject([t for t, r in zip(texts, rows, strict=True) if len(r) > self.context_length],
                f"longer than {self.context_length} tokens")
        return _pad(rows, self.context_length)


def _pad(rows: list[list[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def tokenizer_file_hint() -> Path:
    """Where a manually downloaded CLIP ``tokenizer.json`` is looked for."""
    return paths.checkpoints_dir() / "clip_tokenizer.json"
