"""CLIP visual prompting: templates, tokenizer checks, the head's logits, prompts and LR schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vpcost_utils.clip.clip_prompts import BorderPrompt, PadPrompter, default_pad
from vpcost_utils.clip.head import clip_logits, text_embeddings
from vpcost_utils.clip.schedules import bahng_warmup, cosine_lr
from vpcost_utils.clip.templates import (
    BAHNG_TEMPLATE,
    CLIP_IMAGENET_TEMPLATES,
    ILM_TEMPLATES,
    clean_classname,
    prompts_for,
)
from vpcost_utils.clip.tokenizers import WordTokenizer
from vpcost_utils.errors import SpecError
from vpcost_utils.models.clip_models import ClipModel


def tiny_model(seed: int = 0, vocab: int = 40) -> ClipModel:
    torch.manual_seed(seed)
    blocks = [(64, 96), (64, 256)]
    cfg = {"vision_width": 64, "patch_size": 4, "resolution": 16, "embed_dim": 24, "context_length": 12,
           "vocab_size": vocab, "text_width": 64, "vision_blocks": blocks, "text_blocks": blocks[:1],
           "vision_layers": 2, "text_layers": 1}
    model = ClipModel(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values so the comparison below sees them
        for name, p in model.named_parameters():
            if "ln" in name or "bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.tokenizer = WordTokenizer(["this", "is", "a", "photo", "of", "cat", "dog", "."], buckets=4,
                                    context_length=12)
    return model


def test_templates_are_the_81_of_the_reference():
    assert len(CLIP_IMAGENET_TEMPLATES) == 80 and len(set(CLIP_IMAGENET_TEMPLATES)) == 80
    assert ILM_TEMPLATES[0] == "This is a photo of a {}." and ILM_TEMPLATES[1:] == CLIP_IMAGENET_TEMPLATES
    assert all(t.count("{}") == 1 for t in ILM_TEMPLATES)
    assert BAHNG_TEMPLATE == "This is a photo of a {}"


def test_classname_cleaning_and_template_major_order():
    assert clean_classname("Sci-Fi_Movie ") == "sci fi movie"
    assert prompts_for(["Cat", "big_dog"], ("a {}.", "the {}!")) == ["a cat.", "a big dog.", "the cat!", "the big dog!"]


def test_word_tokenizer_ids_and_rejections():
    tok = WordTokenizer(["a", "cat"], buckets=4, context_length=6)
    ids = tok(["a cat", "a zebra"])
    assert ids[0].tolist() == [1, tok.index["a"], tok.index["cat"], tok.eot, 0, 0]
    assert ids.argmax(1).tolist() == [3, 3]  # end-of-text is the largest id: where encode_text pools
    assert 2 + 2 <= ids[1, 2] < tok.eot  # unknown word -> a hash bucket, not rejected
    with pytest.raises(SpecError, match="printable ASCII"):
        tok(["a caf\u00e9"])
    with pytest.raises(SpecError, match="longer than 6"):
        tok(["a a a a a a"])


def _reference_block(block, x, causal):
    """The same block computed with torch's own nn.MultiheadAttention (packed weights copied over)."""
    width, heads = x.shape[-1], block.attn.heads
    inner = block.attn.in_proj_weight.shape[0] // 3
    assert inner == width, "nn.MultiheadAttention needs full-width blocks"
    mha = torch.nn.MultiheadAttention(width, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.attn.in_proj_weight)
        mha.in_proj_bias.copy_(block.attn.in_proj_bias)
        mha.out_proj.weight.copy_(block.attn.out_proj.weight)
        mha.out_proj.bias.copy_(block.attn.out_proj.bias)
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf")).triu(1) if causal else None
    h = block.ln_1(x)
    x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
    h = block.mlp.c_fc(block.ln_2(x))
    return x + block.mlp.c_proj(h * torch.sigmoid(1.702 * h))


def test_clip_head_logits_match_a_hand_computation():
    model = tiny_model()
    model.visual.transformer.resblocks[0] = type(model.visual.transformer.resblocks[1])(64, 1)  # full width
    images = torch.randn(3, 3, 16, 16)
    text = text_embeddings(model, ["cat", "dog"], ("this is a photo of a {}.", "a {}."))
    logits = clip_logits(model, images, text)

    with torch.no_grad():
        v = model.visual
        x = F.conv2d(images, v.conv1.weight, stride=4).flatten(2).transpose(1, 2)
        x = torch.cat([v.class_embedding.expand(3, 1, -1), x], 1) + v.positional_embedding
        x = v.ln_pre(x)
        for block in v.transformer.resblocks:
            x = _reference_block(block, x, causal=False)
        img = v.ln_post(x[:, 0]) @ v.proj
        tokens = model.tokenizer(["this is a photo of a cat.", "this is a photo of a dog.", "a cat.", "a dog."])
        t = model.token_embedding(tokens) + model.positional_embedding
        for block in model.transformer.resblocks:
            t = _reference_block(block, t, causal=True)
        eot = (tokens == model.tokenizer.eot).int().argmax(1)
        txt = model.ln_final(t)[torch.arange(4), eot] @ model.text_projection
    expected = torch.empty(3, 4, dtype=torch.float64)
    scale = math.exp(model.logit_scale.item())
    for i in range(3):
        for j in range(4):
            a, b = img[i].double(), txt[j].double()
            expected[i, j] = scale * (a @ b) / (a.norm() * b.norm())
    assert torch.allclose(logits.double(), expected, atol=1e-4)
    assert text.shape == (4, 24) and torch.allclose(text.norm(dim=1), torch.ones(4))


def test_text_head_rejects_bad_class_names_before_encoding():
    model = tiny_model()
    with pytest.raises(SpecError, match="cannot take 1 prompt"):
        text_embeddings(model, ["cat", "\u732b"], ("a {}.",))


def test_border_prompt_is_zero_init_and_only_on_the_border():
    prompt = BorderPrompt(12, 3)
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(prompt(x), x)
    prompt(x).sum().backward()
    grad = prompt.program.grad[0]
    assert grad[3:9, 3:9].abs().sum() == 0 and torch.all(grad[:3] == 2) and torch.all(grad[:, :3] == 2)
    assert int(prompt.mask.sum()) == 12 * 12 - 6 * 6


def test_pad_prompter_layout_and_parameter_count():
    prompt = PadPrompter(224, 30, generator=torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in prompt.parameters()) == 69_840  # Bahng et al.'s count at 224 px / 30 px
    delta = prompt(torch.zeros(1, 3, 224, 224))
    assert torch.all(delta[..., 30:194, 30:194] == 0)
    assert torch.equal(delta[..., :30, :], prompt.pad_up) and torch.equal(delta[..., 30:194, :30], prompt.pad_left)
    assert 0.9 < float(prompt.pad_up.detach().std()) < 1.1  # N(0, 1) init
    with pytest.raises(SpecError):
        PadPrompter(40, 20)


def test_default_pad():
    assert default_pad(336) == 30 and default_pad(224) == 30 and default_pad(32) == 4


def test_cosine_without_warmup_matches_torch_cosine_annealing_per_step():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=40.0, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=25)
    for step in range(25):
        assert cosine_lr(step, 40.0, 25) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-9)
        opt.step()
        sched.step()


def test_cosine_with_linear_warmup_step_by_step():
    lrs = [cosine_lr(s, 40.0, total_steps=10, warmup_steps=4) for s in range(10)]
    expected = [10.0, 20.0, 30.0, 40.0] + [0.5 * (1 + math.cos(math.pi * e / 6)) * 40 for e in range(6)]
    assert lrs == pytest.approx(expected)
    assert bahng_warmup(100_000) == 1000 and bahng_warmup(50) == 5


def test_logit_scale_is_clamped_as_the_references_clamp_it():
    from vpcost_utils.clip.head import MAX_LOGIT_SCALE

    model = tiny_model()
    images = torch.randn(2, 3, 16, 16)
    text = text_embeddings(model, ["cat", "dog"], ("a {}.",))
    with torch.no_grad():
        model.logit_scale.fill_(6.0)
        high = clip_logits(model, images, text)
        model.logit_scale.fill_(MAX_LOGIT_SCALE)
        assert torch.allclose(high, clip_logits(model, images, text))
