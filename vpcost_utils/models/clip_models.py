"""CLIP dual encoders: OpenAI ViT-L/14@336, its UPop-compressed versions, and the smoke-profile tinyclip.

One module class, ``ClipModel``, holds every CLIP here. It uses OpenAI's state-dict key layout
(``visual.transformer.resblocks.{i}.attn.in_proj_weight``, ``mlp.c_fc``, ``token_embedding`` ...)
and is rebuilt from tensor shapes, block by block, so a UPop checkpoint whose blocks were sliced
to different widths loads strictly. Attention is written on ``F.scaled_dot_product_attention``
with per-head dim ``rows / (3 * heads)``; heads stay ``width // 64`` as in OpenAI's builder (UPop
prunes per-head dims, never whole heads), so the default scale ``1/sqrt(d')`` matches UPop.

UPop files (``{"model": state_dict}``) also carry an ALBEF-style momentum copy of both towers and
the contrastive queues; ``strip_training_state`` drops exactly those keys (``UPOP_IGNORED_*``) and
nothing else, so any other unexpected key still fails the strict load.

Names (``SourceModel.module`` is a ``ClipModel``; ``provenance["kind"] == "clip"``):

- ``clip_vit_l14_336/openai``: OpenAI's ViT-L/14@336px (TorchScript ``.pt`` as ``clip.load`` uses,
  or a plain / open_clip state dict with the same keys).
- ``clip_vit_l14_336/upop-coco``: the uncompressed COCO-retrieval fine-tune UPop starts from.
- ``clip_vit_l14_336/upop-2x``, ``/upop-4x``: UPop compressed (Shi et al. ICML 2023). Substitute:
  structured L1 pruning of the OpenAI model (``structured_prune``), no retraining.
- ``tinyclip/*`` (the smoke profile's small CLIP-shaped dual encoder) are ``ClipModel``s too, pretrained
  on generated images and registered by ``vpcost_utils.built.tinyclip``.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ._checkpoints import load_file, resolve_checkpoint
from ._registry import ModelEntry, SourceModel, register

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Momentum-encoder copies and contrastive queues in UPop checkpoints: not part of the model we evaluate.
UPOP_IGNORED_PREFIXES = ("visual_m.", "transformer_m.", "token_embedding_m.", "ln_final_m.")
UPOP_IGNORED_KEYS = ("text_projection_m", "positional_embedding_m", "image_queue", "text_queue", "idx_queue",
                     "ptr_queue")
#: Scalars OpenAI's TorchScript archive stores beside the weights.
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

#: ViT-L/14@336px: (vision width, layers, patch, resolution, text width, text layers, embed dim).
VIT_L14_336 = {"vision_width": 1024, "vision_layers": 24, "patch_size": 14, "resolution": 336,
               "text_width": 768, "text_layers": 12, "embed_dim": 768}


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation, x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head attention with packed in-projection, keys as ``nn.MultiheadAttention`` names them.

    ``inner`` = heads * per-head dim; UPop shrinks the per-head dim, so ``inner`` may be < width.
    """

    def __init__(self, width: int, heads: int, inner: int | None = None):
        super().__init__()
        inner = width if inner is None else inner  # UPop can prune a block's attention to zero width
        if inner % heads:
            raise CheckpointError(f"attention inner width {inner} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * inner, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner))
        self.out_proj = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, n, _ = x.shape
        if self.in_proj_weight.shape[0] == 0:  # a zero-width block (UPop): only the output bias remains
            return self.out_proj(x.new_zeros(b, n, 0))
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1 x), then x + mlp(ln_2 x)."""

    def __init__(self, width: int, heads: int, attn_inner: int | None = None, mlp_hidden: int | None = None):
        super().__init__()
        self.attn = Attention(width, heads, attn_inner)
        self.ln_1 = nn.LayerNorm(width)
        hidden = 4 * width if mlp_hidden is None else mlp_hidden  # 0: a fully pruned MLP (UPop), bias only
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(hidden, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of blocks; ``shapes`` gives each block's (attention inner width, MLP hidden width)."""

    def __init__(self, width: int, heads: int, shapes: list[tuple[int, int]]):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, a, m) for a, m in shapes])

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal)
        return x


class VisionTower(nn.Module):
    """ViT image encoder: patchify, class token, positions, blocks, LN of the class token, projection."""

    def __init__(self, resolution: int, patch_size: int, width: int, heads: int, shapes: list[tuple[int, int]],
                 embed_dim: int):
        super().__init__()
        self.resolution = resolution
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, heads, shapes)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


class ClipModel(nn.Module):
    """CLIP with OpenAI's key layout. ``forward(images)`` is ``encode_image``.

    ``tokenizer`` (not a module, not saved) turns strings into ``[N, context_length]`` token ids
    with the end-of-text token as the largest id, which is where ``encode_text`` pools.
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = dict(cfg)
        vw, tw = cfg["vision_width"], cfg["text_width"]
        self.visual = VisionTower(cfg["resolution"], cfg["patch_size"], vw, max(vw // 64, 1), cfg["vision_blocks"],
                                  cfg["embed_dim"])
        self.transformer = Transformer(tw, max(tw // 64, 1), cfg["text_blocks"])
        self.token_embedding = nn.Embedding(cfg["vocab_size"], tw)
        self.positional_embedding = nn.Parameter(torch.randn(cfg["context_length"], tw) * 0.01)
        self.ln_final = nn.LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.randn(tw, cfg["embed_dim"]) * tw**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))  # ln(1 / 0.07), CLIP's initial value
        self.tokenizer: Any = None

    @property
    def resolution(self) -> int:
        return self.visual.resolution

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.ln_final(self.transformer(x, causal=True))
        return x[torch.arange(len(x)), tokens.argmax(dim=-1)] @ self.text_projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


# --- building from shapes ---------------------------------------------------------------------------------------

_BLOCK_KEY = re.compile(r"^(visual\.transformer|transformer)\.resblocks\.(\d+)\.")


def _block_shapes(sd: dict[str, torch.Tensor], prefix: str) -> list[tuple[int, int]]:
    index = sorted({int(m.group(2)) for k in sd if (m := _BLOCK_KEY.match(k)) and m.group(1) == prefix})
    if index != list(range(len(index))):
        raise CheckpointError(f"{prefix}.resblocks are not numbered 0..n-1: {index}")
    shapes = []
    for i in index:
        p = f"{prefix}.resblocks.{i}."
        try:
            shapes.append((sd[p + "attn.in_proj_weight"].shape[0] // 3, sd[p + "mlp.c_fc.weight"].shape[0]))
        except KeyError as exc:
            raise CheckpointError(f"block {p[:-1]} lacks {exc.args[0]}: not an OpenAI-layout CLIP state dict") from exc
    return shapes


def config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Every size of the CLIP stored in ``sd``, read from tensor shapes (as OpenAI's builder does, per block)."""
    try:
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        cfg = {
            "vision_width": sd["visual.conv1.weight"].shape[0], "patch_size": patch, "resolution": patch * grid,
            "embed_dim": sd["text_projection"].shape[1], "context_length": sd["positional_embedding"].shape[0],
            "vocab_size": sd["token_embedding.weight"].shape[0], "text_width": sd["ln_final.weight"].shape[0],
        }
    except KeyError as exc:
        raise CheckpointError(f"not a ViT CLIP state dict in OpenAI's layout: missing {exc.args[0]!r}") from exc
    cfg["vision_blocks"] = _block_shapes(sd, "visual.transformer")
    cfg["text_blocks"] = _block_shapes(sd, "transformer")
    cfg["vision_layers"], cfg["text_layers"] = len(cfg["vision_blocks"]), len(cfg["text_blocks"])
    return cfg


def strip_training_state(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop UPop's momentum copies and queues and OpenAI's stored scalars; return (weights, dropped keys)."""
    keep, dropped = {}, []
    for k, v in sd.items():
        if k.startswith(UPOP_IGNORED_PREFIXES) or k in UPOP_IGNORED_KEYS or k in OPENAI_EXTRA_KEYS:
            dropped.append(k)
        else:
            keep[k] = v
    return keep, dropped


def build_clip(sd: dict[str, torch.Tensor]) -> ClipModel:
    """A ``ClipModel`` of the shapes in ``sd`` with its weights, loaded strictly, in fp32."""
    sd, _ = strip_training_state(sd)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model = ClipModel(config_from_state_dict(sd))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"CLIP state dict does not match the architecture rebuilt from its shapes: "
                              f"missing {missing[:8]}, unexpected {unexpected[:8]}")
    return model


def _block_params(width: int, attn_inner: int, mlp_hidden: int) -> int:
    # The tensors UPop slices: in_proj (w + b), out_proj weight, c_fc (w + b), c_proj weight.
    return 3 * attn_inner * (width + 1) + width * attn_inner + mlp_hidden * (width + 1) + width * mlp_hidden


def block_param_ratio(cfg: dict[str, Any]) -> float:
    """Prunable block parameters kept, relative to the same CLIP with full-width blocks (1.0 = dense)."""
    kept = full = 0
    for width, blocks in ((cfg["vision_width"], cfg["vision_blocks"]), (cfg["text_width"], cfg["text_blocks"])):
        kept += sum(_block_params(width, a, m) for a, m in blocks)
        full += len(blocks) * _block_params(width, width, 4 * width)
    return kept / full


# --- structured pruning (the UPop substitute and tinyclip/prune-50) -----------------------------------------------

@torch.no_grad()
def structured_prune(model: ClipModel, keep: float) -> ClipModel:
    """A copy of ``model`` with each block's MLP hidden units and per-head dims cut to ``keep`` by L1 norm.

    Mirrors the structure UPop removes (hidden units; per-head dims, the same dims in every head)
    but chooses them by weight magnitude with no retraining, so accuracy drops much more.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for prefix, width in (("visual.transformer", model.cfg["vision_width"]), ("transformer", model.cfg["text_width"])):
        heads = max(width // 64, 1)
        for i in range(len(model.cfg["vision_blocks" if prefix.startswith("visual") else "text_blocks"])):
            _prune_block(sd, f"{prefix}.resblocks.{i}.", heads, keep)
    pruned = build_clip(sd)
    pruned.tokenizer = model.tokenizer
    return pruned


def _prune_block(sd: dict[str, torch.Tensor], p: str, heads: int, keep: float) -> None:
    fc_w, fc_b, proj_w = sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"], sd[p + "mlp.c_proj.weight"]
    score = fc_w.abs().sum(1) + proj_w.abs().sum(0)
    units = score.topk(max(1, round(keep * len(score)))).indices.sort().values
    sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = fc_w[units], fc_b[units]
    sd[p + "mlp.c_proj.weight"] = proj_w[:, units]

    in_w, in_b, out_w = sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], sd[p + "attn.out_proj.weight"]
    inner = in_w.shape[0] // 3
    d = inner // heads
    # Score a per-head dim by its q, k, v rows and out_proj columns summed over heads (UPop's mask is shared).
    rows = in_w.abs().sum(1).view(3, heads, d).sum((0, 1)) + out_w.abs().sum(0).view(heads, d).sum(0)
    dims = rows.topk(max(1, round(keep * d))).indices.sort().values
    head_index = (torch.arange(heads)[:, None] * d + dims[None]).flatten()
    qkv_index = torch.cat([head_index + j * inner for j in range(3)])
    sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"] = in_w[qkv_index], in_b[qkv_index]
    sd[p + "attn.out_proj.weight"] = out_w[:, head_index]


# --- reading files ------------------------------------------------------------------------------------------------

def read_clip_file(path: Path) -> dict[str, torch.Tensor]:
    """The weights in a CLIP file: OpenAI TorchScript archive, ``{"model": sd}`` (UPop), ``{"state_dict": sd}``, sd."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
        if is_script:
            try:
                with warnings.catch_warnings():  # OpenAI ships TorchScript; torch marks jit.load deprecated
                    warnings.simplefilter("ignore", FutureWarning)
                    return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
            except Exception as exc:
                raise CheckpointError(f"cannot read TorchScript archive {path} ({exc}); fetch it again") from exc
    obj = load_file(path)
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a CLIP state dict")
    return obj


def _check_arch(cfg: dict[str, Any], name: str) -> None:
    wrong = {k: (cfg[k], v) for k, v in VIT_L14_336.items() if cfg[k] != v}
    if wrong:
        raise CheckpointError(f"{name}: the file is not ViT-L/14@336px; (found, expected): {wrong}")


def _source_model(entry: ModelEntry, model: ClipModel, **extra: Any) -> SourceModel:
    cfg = model.cfg
    provenance = {"name": entry.name, "kind": "clip", "resolution": model.resolution,
                  "params": sum(p.numel() for p in model.parameters()),
                  "params_visual": sum(p.numel() for p in model.visual.parameters()),
                  "block_param_ratio": round(block_param_ratio(cfg), 4), **extra}
    return SourceModel(entry.name, model, canvas_size=model.resolution, mean=CLIP_MEAN, std=CLIP_STD,
                       num_classes=0, provenance=provenance)


def _attach_bpe_tokenizer(model: ClipModel) -> ClipModel:
    from .clip_tokenizers import ClipBpeTokenizer  # lazy: the tokenizer file is only needed for text

    model.tokenizer = ClipBpeTokenizer(context_length=model.cfg["context_length"])
    return model


def _load_dense(entry: ModelEntry) -> SourceModel:
    model = build_clip(read_clip_file(resolve_checkpoint(entry)))
    _check_arch(model.cfg, entry.name)
    ratio = block_param_ratio(model.cfg)
    if ratio != 1.0:
        raise CheckpointError(f"{entry.name}: expected full-width blocks, found {ratio:.3f} of the block parameters; "
                              "this is a compressed checkpoint, use the upop-* names for it")
    return _source_model(entry, _attach_bpe_tokenizer(model))


#: Kept fraction of block parameters each UPop name claims, and how far the measured value may be from it.
UPOP_KEEP = {"upop-2x": 0.5, "upop-4x": 0.25}
UPOP_TOLERANCE = 0.15


def check_upop_ratio(cfg: dict[str, Any], tag: str, name: str) -> float:
    """Measured kept fraction of block parameters; raises when it is not near what ``tag`` claims."""
    ratio = block_param_ratio(cfg)
    want = UPOP_KEEP[tag]
    if abs(ratio - want) > UPOP_TOLERANCE:
        raise CheckpointError(f"{name}: {ratio:.3f} of the prunable block parameters are kept, but {tag} means about "
                              f"{want} (+/- {UPOP_TOLERANCE}); the file is another compression level or not UPop")
    return ratio


def _load_upop(entry: ModelEntry) -> SourceModel:
    raw = read_clip_file(resolve_checkpoint(entry))
    sd, dropped = strip_training_state(raw)
    model = build_clip(sd)
    _check_arch(model.cfg, entry.name)
    tag = entry.name.split("/", 1)[1]
    if tag in UPOP_KEEP:
        check_upop_ratio(model.cfg, tag, entry.name)
    return _source_model(entry, _attach_bpe_tokenizer(model), ignored_keys=len(dropped))


def _substitute_upop(entry: ModelEntry) -> SourceModel:
    from ._registry import create_model

    dense = create_model("clip_vit_l14_336/openai")
    keep = UPOP_KEEP[entry.name.split("/", 1)[1]]
    model = structured_prune(dense.module, keep)
    return _source_model(entry, model, pruned_from="clip_vit_l14_336/openai", keep=keep)


_OPENAI_URL = ("https://openaipublic.azureedge.net/clip/models/"
               "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt")
_UPOP_README = "https://github.com/sdc17/UPop (README, Google Drive links; file id {})"

_FAKE = "vpcost_utils.models.clip_fakes:write_fake"  # random weights in the published layout (rehearsal)

register(ModelEntry(
    fake=_FAKE,
    name="clip_vit_l14_336/openai", arch="clip_vit_l14_336", compression="dense", method="dense", loader=_load_dense,
    source=_OPENAI_URL, filename="ViT-L-14-336px.pt",
    sha256="3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", license="MIT (OpenAI CLIP)",
    notes="OpenAI TorchScript archive; a plain or open_clip state dict with OpenAI key names also loads"))
register(ModelEntry(
    fake=_FAKE, name="clip_vit_l14_336/upop-coco", arch="clip_vit_l14_336", compression="dense", method="dense",
    loader=_load_upop, source=_UPOP_README.format("10p1oPdiMUqo0MfPul5hCb_h9mCaNCh6q"),
    filename="clip_large_retrieval_coco.pth", license="BSD-3 (UPop), MIT (CLIP)", obtainable="maybe",
    notes="COCO-retrieval fine-tune of ViT-L/14@336 that UPop compresses; momentum copies and queues ignored"))
_UPOP_FILES = {"upop-2x": "184sBFSArAXfxkd8ZqlF8xsZCOOsNmT0z", "upop-4x": "1C3LRQZ2IP7St813ERH7LidTcQP99xhKw"}
for _tag, _file_id in _UPOP_FILES.items():
    register(ModelEntry(
        fake=_FAKE, name=f"clip_vit_l14_336/{_tag}", arch="clip_vit_l14_336", compression="structured", method="upop",
        loader=_load_upop, parent="clip_vit_l14_336/upop-coco", source=_UPOP_README.format(_file_id),
        filename=f"clip_large_retrieval_coco_{_tag[5:]}_compressed.pth", license="BSD-3 (UPop), MIT (CLIP)",
        obtainable="maybe", substitute=_substitute_upop,
        substitute_note=f"structured L1 pruning of OpenAI ViT-L/14@336 to {UPOP_KEEP[_tag]} of block params, "
                        "no retraining",
        notes="blocks rebuilt from sliced shapes; momentum copies (*_m) and queues ignored explicitly"))
