"""UPop / OpenAI CLIP checkpoints: rebuilding pruned blocks from shapes in the real key layout, strictly."""

from __future__ import annotations

import pytest
import torch

from vpcost_utils.errors import CheckpointError, MissingFileError
from vpcost_utils.models.clip_fakes import upop_file  # UPop's published checkpoint layout
from vpcost_utils.models.clip_models import (
    UPOP_IGNORED_KEYS,
    UPOP_IGNORED_PREFIXES,
    ClipModel,
    block_param_ratio,
    build_clip,
    check_upop_ratio,
    config_from_state_dict,
    read_clip_file,
    strip_training_state,
    structured_prune,
)

# The OpenAI / UPop names of one residual block (nn.MultiheadAttention + c_fc / c_proj MLP).
BLOCK_KEYS = {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight",
              "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
              "ln_2.bias"}
TOP_KEYS = {"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight",
            "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias", "visual.proj",
            "token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection",
            "logit_scale"}


def dense_tiny(seed: int = 0) -> ClipModel:
    torch.manual_seed(seed)
    cfg = {"vision_width": 128, "patch_size": 4, "resolution": 16, "embed_dim": 32, "context_length": 8,
           "vocab_size": 30, "text_width": 64, "vision_blocks": [(128, 512)] * 2, "text_blocks": [(64, 256)] * 2,
           "vision_layers": 2, "text_layers": 2}
    return ClipModel(cfg).eval()


def test_state_dict_uses_the_openai_key_layout():
    keys = set(dense_tiny().state_dict())
    expected = set(TOP_KEYS)
    for tower, n in (("visual.transformer", 2), ("transformer", 2)):
        expected |= {f"{tower}.resblocks.{i}.{k}" for i in range(n) for k in BLOCK_KEYS}
    assert keys == expected


def test_pruned_checkpoint_in_upop_layout_rebuilds_and_round_trips(tmp_path):
    pruned = structured_prune(dense_tiny(), keep=0.5)
    block = pruned.state_dict()
    assert block["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 2 * 32, 128)  # 2 heads x 32 dims
    assert block["visual.transformer.resblocks.0.attn.out_proj.weight"].shape == (128, 64)
    assert block["visual.transformer.resblocks.1.mlp.c_fc.weight"].shape == (256, 128)
    assert block["transformer.resblocks.0.mlp.c_proj.weight"].shape == (64, 128)
    path = tmp_path / "clip_large_retrieval_coco_2x_compressed.pth"
    torch.save(upop_file(pruned), path)

    raw = read_clip_file(path)
    weights, dropped = strip_training_state(raw)
    assert set(dropped) == {k for k in raw if k.startswith(UPOP_IGNORED_PREFIXES) or k in UPOP_IGNORED_KEYS}
    assert len(dropped) == len(raw) - len(pruned.state_dict())
    rebuilt = build_clip(raw).eval()
    assert config_from_state_dict(weights)["vision_blocks"] == [(64, 256)] * 2
    images, tokens = torch.randn(2, 3, 16, 16), torch.tensor([[1, 5, 7, 29, 0, 0, 0, 0], [1, 29, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(rebuilt.encode_image(images), pruned.encode_image(images), atol=1e-6)
        assert torch.allclose(rebuilt.encode_text(tokens), pruned.encode_text(tokens), atol=1e-6)
    assert block_param_ratio(rebuilt.cfg) == pytest.approx(0.5, abs=0.01)


def test_pruned_model_keeps_the_dense_outputs_when_nothing_is_cut():
    dense = dense_tiny()
    same = structured_prune(dense, keep=1.0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(same.encode_image(x), dense.encode_image(x), atol=1e-6)


def test_unexpected_or_missing_keys_fail_strictly(tmp_path):
    blob = upop_file(dense_tiny())
    blob["model"]["visual.extra_head.weight"] = torch.zeros(3)
    torch.save(blob, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="unexpected"):
        build_clip(read_clip_file(tmp_path / "bad.pth"))
    blob = upop_file(dense_tiny())
    del blob["model"]["visual.transformer.resblocks.1.mlp.c_proj.weight"]
    with pytest.raises(CheckpointError, match="missing"):
        build_clip(blob["model"])
    with pytest.raises(CheckpointError, match="lacks"):
        build_clip({k: v for k, v in blob["model"].items() if "resblocks.0.attn.in_proj_weight" not in k})


def test_upop_ratio_check():
    cfg = structured_prune(dense_tiny(), keep=0.5).cfg
    assert check_upop_ratio(cfg, "upop-2x", "x") == pytest.approx(0.5, abs=0.01)
    with pytest.raises(CheckpointError, match="upop-4x means about 0.25"):
        check_upop_ratio(cfg, "upop-4x", "x")


def test_registry_upop_entry_checks_architecture_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    from vpcost_utils.models import create_model

    with pytest.raises(MissingFileError, match="clip_large_retrieval_coco_2x_compressed.pth") as info:
        create_model("clip_vit_l14_336/upop-2x")
    assert str(tmp_path / "checkpoints") in str(info.value)
    (tmp_path / "checkpoints").mkdir()
    torch.save(upop_file(structured_prune(dense_tiny(), 0.5)),
               tmp_path / "checkpoints" / "clip_large_retrieval_coco_2x_compressed.pth")
    with pytest.raises(CheckpointError, match="not ViT-L/14@336px"):
        create_model("clip_vit_l14_336/upop-2x")


def test_torchscript_archive_as_openai_ships_it_loads(tmp_path):
    dense = dense_tiny()
    images = torch.randn(2, 3, 16, 16)
    with pytest.warns(Warning):  # tracing warns about the unused text tower; irrelevant here
        scripted = torch.jit.trace(dense, images[:1])
    scripted.save(str(tmp_path / "ViT-tiny.pt"))
    sd = read_clip_file(tmp_path / "ViT-tiny.pt")
    sd.update({"input_resolution": torch.tensor(16), "context_length": torch.tensor(8), "vocab_size": torch.tensor(30)})
    rebuilt = build_clip(sd).eval()
    with torch.no_grad():
        assert torch.allclose(rebuilt(images), dense(images), atol=1e-6)
