"""VVTQ DeiT/Swin loaders: tiny networks with the real key layout, saved as train_VVTQ.py does."""

from __future__ import annotations

import pytest
import timm
import torch

from vpcost_utils.errors import CheckpointError, MissingFileError
from vpcost_utils.models import create_model, get_entry, list_models
from vpcost_utils.models import vvtq as V
from vpcost_utils.models.lsq import init_vvtq_steps, vvtq_quantizers
from vpcost_utils.models.vvtq_fakes import vvtq_file  # VVTQ's published checkpoint layout

TINY = {
    "deit_tiny": V.DeitConfig(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3, num_classes=10),
    # two stages: a shifted-window block with a mask, patch merging, and a stage with one window
    "swin_tiny": V.SwinConfig(img_size=32, patch_size=4, embed_dim=12, depths=(2, 2), num_heads=(1, 2),
                              window_size=4, num_classes=10),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    for arch, cfg in TINY.items():
        monkeypatch.setitem(V.ARCH_CONFIGS, arch, cfg)
    return tmp_path / "checkpoints"


def trained(arch: str, bits: int, seed: int = 0) -> torch.nn.Module:
    """A tiny VVTQ network with non-trivial weights and MSE-initialised steps (as after QAT)."""
    torch.manual_seed(seed)
    model = V.build_vvtq(arch, bits, TINY[arch])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("alpha", "beta")):
                p.add_(0.1 * torch.randn_like(p))
    init_vvtq_steps(model, torch.randn(4, 3, 32, 32))
    return model.eval()


def save_vvtq(model: torch.nn.Module, folder, filename: str, prefix: str = "module.") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(vvtq_file(model, prefix), folder / filename)


def test_registry_names_and_metadata():
    assert list_models("deit_tiny/*") == [f"deit_tiny/{t}" for t in ("fp32", "timm", "w2a2", "w3a3", "w4a4")]
    assert list_models("swin_tiny/*") == [f"swin_tiny/{t}" for t in ("fp32", "timm", "w2a2", "w3a3", "w4a4")]
    e = get_entry("swin_tiny/w3a3")
    assert (e.bits, e.parent, e.filename, e.top1, e.method) == (3, "swin_tiny/fp32", "swin_t_w3a3.tar", 81.37, "vvtq")
    assert e.substitute is not None and "PTQ" in e.substitute_note
    assert get_entry("deit_tiny/w2a2").top1 == 59.73
    # the source is a web folder, not a file URL: resolve_checkpoint must never try to download it
    assert not e.source.startswith("http")


@pytest.mark.parametrize("arch,bits", [("deit_tiny", 3), ("swin_tiny", 2), ("deit_tiny", 4)])
def test_published_layout_round_trips(home, arch, bits):
    saved = trained(arch, bits)
    save_vvtq(saved, home, f"{V.VVTQ_FILE_STEMS[arch]}_w{bits}a{bits}.tar")
    loaded = create_model(f"{arch}/w{bits}a{bits}")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), saved(x))
    assert loaded.canvas_size == 32 and loaded.provenance["substitute"] is False
    measured = loaded.provenance["measured_bits"]
    edges = 2 if arch == "deit_tiny" else 3  # patch embedding + head (+ Swin's one patch merging)
    n_blocks = sum(getattr(TINY[arch], "depths", ())) or TINY[arch].depth
    assert measured["weight"] == {str(bits): 6 * n_blocks, "8": edges}  # q, k, v, proj, fc1, fc2 per block
    assert measured["act"][str(bits)] == 8 * n_blocks  # input, q, k, v, attn, output, mlp in, mlp hidden
    assert loaded.provenance["epoch"] == 7


def test_swin_keeps_vvtq_unused_patch_quantizer(home):
    saved = trained("swin_tiny", 3)
    assert saved.patch_embed.quant.init_state.item() == 0  # VVTQ never calls it, so it is never initialised
    save_vvtq(saved, home, "swin_t_w3a3.tar")
    model = create_model("swin_tiny/w3a3").module
    x = torch.randn(2, 3, 32, 32)
    model.patch_embed.quant.alpha.data.fill_(1e-3)  # would wreck the input if it were applied
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))


@pytest.mark.parametrize("stored,expected", [(7.4, 7), (6.5, 6), (8.6, 8)])
def test_swin_patch_merging_runs_at_its_stored_width(home, stored, expected):
    """VVTQ's PatchMerging.reduction has a trainable nbits; its forward uses round(clamp(nbits, 2, 8))."""
    saved = trained("swin_tiny", 3)
    with torch.no_grad():
        saved.layers[0].downsample.reduction.nbits.fill_(stored)
    save_vvtq(saved, home, "swin_t_w3a3.tar")
    loaded = create_model("swin_tiny/w3a3")
    reduction = loaded.module.layers[0].downsample.reduction
    assert reduction.bits == expected
    edge_bits = loaded.provenance["edge_bits"]
    assert edge_bits == {"patch_embed.proj": 8, "layers.0.downsample.reduction": expected, "quant": 8, "head": 8}
    assert loaded.provenance["measured_bits"]["weight"][str(expected)] >= 1
    assert torch.unique(reduction.quantized_weight()).numel() <= 2**expected
    x = torch.randn(3, 3, 32, 32)
    reference = saved.layers[0].downsample.reduction
    with torch.no_grad():
        out = loaded.module(x)
        reference.bits = expected  # the saved network run at the width VVTQ reads from the file
        assert torch.equal(out, saved(x))
        if expected != 8:
            reference.bits = 8
            assert not torch.equal(out, saved(x))


def test_prefix_free_state_dict_loads(home):
    saved = trained("deit_tiny", 4)
    save_vvtq(saved, home, "deit_t_w4a4.tar", prefix="")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(create_model("deit_tiny/w4a4").module(x), saved(x))


def test_gradients_reach_the_input(home):
    save_vvtq(trained("deit_tiny", 2), home, "deit_t_w2a2.tar")
    model = create_model("deit_tiny/w2a2").module
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # straight-through rounding: prompts can be trained


def test_missing_key_is_reported(home):
    saved = trained("deit_tiny", 3)
    home.mkdir(parents=True)
    state = {"module." + k: v for k, v in saved.state_dict().items() if k != "blocks.1.attn.proj_k.alpha"}
    torch.save({"epoch": 1, "state_dict": state, "best_acc1": 1.0}, home / "deit_t_w3a3.tar")
    with pytest.raises(CheckpointError, match=r"1 missing keys \(first: \[.blocks\.1\.attn\.proj_k\.alpha.\]\)"):
        create_model("deit_tiny/w3a3")


def test_fused_qkv_layout_is_rejected(home):
    saved = trained("deit_tiny", 3)
    state = saved.state_dict()
    for b in range(2):
        state[f"blocks.{b}.attn.qkv.weight"] = torch.cat([state.pop(f"blocks.{b}.attn.proj_{n}.weight") for n in "qkv"])
    home.mkdir(parents=True)
    torch.save({"state_dict": state}, home / "deit_t_w3a3.tar")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        create_model("deit_tiny/w3a3")


def test_wrong_bit_width_is_rejected(home):
    save_vvtq(trained("deit_tiny", 4), home, "deit_t_w3a3.tar")  # a W4A4 file under the W3A3 name
    with pytest.raises(CheckpointError, match=r"not a 3-bit model: 28 layers differ.*stores 4"):
        create_model("deit_tiny/w3a3")


def test_uninitialised_steps_are_rejected(home):
    saved = trained("swin_tiny", 4)
    saved.layers[1].blocks[0].attn.quant_q.init_state.zero_()
    save_vvtq(saved, home, "swin_t_w4a4.tar")
    with pytest.raises(CheckpointError, match=r"never initialised \(layers\.1\.blocks\.0\.attn\.quant_q\)"):
        create_model("swin_tiny/w4a4")


def test_checkpoint_without_state_dict(home):
    home.mkdir(parents=True)
    torch.save({"model": trained("deit_tiny", 2).state_dict()}, home / "deit_t_w2a2.tar")
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        create_model("deit_tiny/w2a2")


def test_absent_file_says_where_to_get_it(home):
    with pytest.raises(MissingFileError, match=r"deit_t_w2a2\.tar is missing.*sharepoint.*checkpoints"):
        create_model("deit_tiny/w2a2")


def tiny_timm(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    name = V.TIMM_NAMES[arch].split(".")[0]
    model = timm.create_model(name, pretrained=False, **V.timm_config_kwargs(TINY[arch]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-trivial LayerNorm / bias values too
    return model.eval()


@pytest.mark.parametrize("arch", ["deit_tiny", "swin_tiny"])
def test_fp32_is_timm_weights_in_the_vvtq_layout(home, monkeypatch, arch):
    reference = tiny_timm(arch)
    monkeypatch.setattr(V, "timm_float", lambda a: reference)
    model = create_model(f"{arch}/fp32").module
    assert isinstance(model, (V.QuantDeiT, V.QuantSwin)) and not vvtq_quantizers(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)


def test_timm_entry_offline_without_cache(home, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingFileError, match=r"huggingface\.co/timm/deit_tiny_patch16_224\.fb_in1k"):
        create_model("deit_tiny/timm")


def test_ptq_substitute_only_when_asked(home, monkeypatch):
    monkeypatch.setattr(V, "timm_float", lambda a: tiny_timm(a))
    monkeypatch.setattr("vpcost_utils.models.quantize.synthetic_calibration",
                        lambda size: [torch.randn(4, 3, size, size)])
    with pytest.raises(MissingFileError):
        create_model("swin_tiny/w2a2")
    model = create_model("swin_tiny/w2a2", substitute=True)
    assert "PTQ substitute" in model.provenance["substitute"]
    from vpcost_utils.models.quantize import count_distinct_weights, quantized_bits

    bits = quantized_bits(model.module)
    counts = count_distinct_weights(model.module)
    assert sorted(set(bits.values())) == [2, 8]
    assert all(counts[n] <= 2 ** b for n, b in bits.items())
    # exactly the placement the note states: fused qkv, proj, fc1, fc2 and patch merging at b bits, edges at 8
    note = get_entry("swin_tiny/w2a2").substitute_note
    assert "fused qkv" in note and "patch merging at W2A2" in note and "softmax output stay float" in note
    assert {n.rsplit(".", 1)[1] for n, b in bits.items() if b == 2} == {"qkv", "proj", "fc1", "fc2", "reduction"}
    assert {n for n, b in bits.items() if b == 8} == {"patch_embed.proj", "head.fc"}
    assert model.provenance["layers_per_bits"] == {"2": len(bits) - 2, "8": 2}


def test_real_size_deit_from_hub_file(home, monkeypatch, tmp_path):
    """The real timm_float path (hub file -> timm -> q/k/v split), fed a random full-size DeiT-T file."""
    import huggingface_hub
    from safetensors.torch import save_file

    monkeypatch.setitem(V.ARCH_CONFIGS, "deit_tiny", V.DeitConfig())
    torch.manual_seed(0)
    published = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    save_file(published.state_dict(), tmp_path / "model.safetensors")
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, **kw: asked.append((repo, name)) or str(tmp_path / "model.safetensors"))
    reference = create_model("deit_tiny/timm").module
    fp32 = create_model("deit_tiny/fp32").module
    assert asked[0] == ("timm/deit_tiny_patch16_224.fb_in1k", "model.safetensors")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = published(x)
        torch.testing.assert_close(reference(x), expected)
        torch.testing.assert_close(fp32(x), expected, atol=1e-5, rtol=1e-5)


def test_authors_load_replays_the_forks_strict_vvtq_load(home):
    """The fork (upload branch) strips ``module.`` and loads strictly; VVTQ then runs at the stored widths."""
    from vpcost_utils.models.authors import authors_load

    saved = trained("swin_tiny", 3)
    with torch.no_grad():
        saved.layers[0].downsample.reduction.nbits.fill_(7.4)
    save_vvtq(saved, home, "swin_t_w3a3.tar")
    result = authors_load("swin_tiny/w3a3")
    r = result.report
    assert r.error is None and r.loaded == r.in_file == r.network == len(saved.state_dict())
    assert result.module.layers[0].downsample.reduction.bits == 7
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(result.module(x), create_model("swin_tiny/w3a3").module(x))
