"""Files of the Hugging Face Hub that models and datasets share: tokenizers looked up locally first.

A neutral module (neither ``models`` nor ``data``): ``models.clip_tokenizers`` and ``data.text`` both
read tokenizer files through it.
"""

from __future__ import annotations

from pathlib import Path

from .fetch import offline


def hub_tokenizer(repo: str, local: Path):
    """A ``tokenizers.Tokenizer``: ``local`` file, else the HF cache, else a download (skipped with VPCOST_OFFLINE=1).

    Raises ``FileNotFoundError`` when none works, so callers can list it among what is missing.
    """
    from huggingface_hub import try_to_load_from_cache
    from tokenizers import Tokenizer

    if local.exists():
        return Tokenizer.from_file(str(local))
    cached = try_to_load_from_cache(repo, "tokenizer.json")
    if isinstance(cached, str):
        return Tokenizer.from_file(cached)
    if offline():
        raise FileNotFoundError(f"tokenizer.json of {repo} is not cached and VPCOST_OFFLINE is set")
    try:
        return Tokenizer.from_pretrained(repo)
    except Exception as exc:
        raise FileNotFoundError(f"tokenizer.json of {repo} could not be downloaded ({exc})") from exc
