"""CLIP's tokenizers live with the model now (``vpcost_utils.models.clip_tokenizers``); kept as an alias."""

from ..models.clip_tokenizers import (  # noqa: F401
    CLIP_TOKENIZER_REPO,
    ClipBpeTokenizer,
    WordTokenizer,
    tokenizer_file_hint,
)
