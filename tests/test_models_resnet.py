"""ResNet loaders: every checkpoint format round-trips from a file with the real key layout.

Each test prunes a randomly initialised torchvision ResNet, saves it in one source's layout (SparseML,
IST AC/DC with ``module.`` + ``_layer``/``_weight_mask`` wrappers, Iofinova's ResnetTF for RigL, the
lottery-ticket mask x weight pair), loads it through ``create_model`` and compares outputs. ResNet-50
tests use a width-reduced torchvision ResNet-50 (``width_per_group=4``): the same module tree and key
names, a fifth of the weights, so the suite stays fast on a shared CPU.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from vpcost_utils.errors import CheckpointError, MissingFileError
from vpcost_utils.models import create_model, get_entry, resnet
from vpcost_utils.models._checkpoints import sha256_of
from vpcost_utils.models.imagenet import imagenet_classes
from vpcost_utils.models.prune import counted_layers, magnitude_prune, zero_counts
from vpcost_utils.models.resnet_fakes import to_ist, to_lottery_ticket, to_resnet_tf, to_sparseml  # published layouts

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def small_resnet50() -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=4)


def build(arch: str) -> nn.Module:
    return small_resnet50() if arch == "resnet50" else getattr(torchvision.models, arch)(weights=None)


def randomize_bn(module: nn.Module, seed: int) -> nn.Module:
    """Calibrate BatchNorm on random images, then perturb it, so outputs depend on the input.

    A pruned random network with default statistics collapses to a constant output, which would make the
    output comparisons below pass for any weights; calibrated statistics keep the signal alive, and the
    perturbation makes a buffer that fails to load visible.
    """
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
        module.train()(torch.randn(4, 3, 32, 32, generator=g))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g), alpha=0.05)
            m.weight.uniform_(0.8, 1.2, generator=g)
    return module.eval()


def pruned(module: nn.Module, method: str, sparsity: float, scope: str = "global") -> nn.Module:
    # One weight scale for every layer: with torchvision's fan-dependent init a global threshold would empty the
    # fc and collapse the outputs to its bias; BatchNorm calibration then rescales the activations.
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0, 0.05)
    rule = resnet.RULES[method]
    magnitude_prune(module, 1 - sparsity, scope=scope, layers=counted_layers(module, exclude=rule.exclude,
                                                                              kinds=rule.kinds))
    return randomize_bn(module, 1)


def out(module: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        logits = module.eval()(X)
    # the two images must give different logits, or an output comparison proves nothing
    assert (logits[0] - logits[1]).abs().max() > 1e-2 * logits.abs().max()
    return logits


# ----------------------------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    monkeypatch.setenv("VPCOST_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    monkeypatch.setattr(resnet, "build_torchvision", build)
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


@pytest.fixture(scope="module")
def r18_gmp() -> nn.Module:
    torch.manual_seed(0)
    return pruned(torchvision.models.resnet18(), "gmp", 0.85, scope="layerwise")


@pytest.fixture(scope="module")
def r50_acdc90() -> nn.Module:
    torch.manual_seed(1)
    return pruned(small_resnet50(), "acdc", 0.90)


@pytest.fixture(scope="module")
def r50_lt() -> nn.Module:
    torch.manual_seed(2)
    return pruned(small_resnet50(), "lt", 1 - 0.62575)


def gmp_path(ckpt_dir, depth="18"):
    path = ckpt_dir / get_entry(f"resnet{depth}/gmp").filename
    path.parent.mkdir(parents=True)
    return path


def place_dense(name: str, module: nn.Module, tmp_path, monkeypatch):
    """Put ``module``'s weights where torchvision keeps ``name``'s file, accepting its hash."""
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / get_entry(name).filename
    torch.save(module.state_dict(), path)
    digest = sha256_of(path)
    monkeypatch.setattr(resnet, "_hash_prefix", lambda filename: digest[:8])
    return path


# ----------------------------------------------------------------------------------------------- SparseML


def test_sparseml_layout_loads_strictly_and_reproduces_outputs(ckpt_dir, r18_gmp):
    blob = to_sparseml(r18_gmp.state_dict())
    assert {"input.conv.weight", "sections.1.0.identity.conv.weight", "classifier.fc.bias"} <= set(blob["state_dict"])
    path = gmp_path(ckpt_dir)
    torch.save(blob, path)
    model = create_model("resnet18/gmp")
    torch.testing.assert_close(out(model.module), out(r18_gmp))
    prov = model.provenance
    assert prov["substitute"] is False and prov["sha256"] == sha256_of(path)
    assert prov["measured_sparsity"] == pytest.approx(0.85, abs=1e-3)
    assert not any(p.requires_grad for p in model.module.parameters())


def test_sparseml_missing_key_is_named(ckpt_dir, r18_gmp):
    blob = to_sparseml(r18_gmp.state_dict())
    del blob["state_dict"]["classifier.fc.bias"]
    torch.save(blob, gmp_path(ckpt_dir))
    with pytest.raises(CheckpointError, match=r"strict key/shape check failed.*missing keys.*fc\.bias"):
        create_model("resnet18/gmp")


def test_sparseml_dense_file_fails_the_sparsity_floor(ckpt_dir):
    torch.save(to_sparseml(torchvision.models.resnet18().state_dict()), gmp_path(ckpt_dir))
    with pytest.raises(CheckpointError, match="sparsity check failed"):
        create_model("resnet18/gmp")


def test_sparsezoo_missing_offline_names_stub_and_folder(ckpt_dir):
    with pytest.raises(MissingFileError) as err:
        create_model("resnet34/gmp")
    msg = str(err.value)
    assert "zoo:cv/classification/resnet_v1-34/pytorch/sparseml/imagenet/pruned-conservative" in msg
    assert "end-of-life" in msg and str(ckpt_dir) in msg and "model.pth" in msg


# ------------------------------------------------------------------------------------------ IST AC/DC


def test_ist_wrapped_layout_folds_masks(ckpt_dir, r50_acdc90):
    blob = to_ist(r50_acdc90)
    assert "module.layer1.0.conv1._layer.weight" in blob["model_state_dict"]
    assert "module.fc._bias_mask" in blob["model_state_dict"]
    torch.save(blob, ckpt_dir / "resnet50_acdc_90.pth")
    model = create_model("resnet50/acdc-90")
    torch.testing.assert_close(out(model.module), out(r50_acdc90))
    assert model.provenance["measured_sparsity"] == pytest.approx(0.90, abs=1e-4)
    assert "Linear" in model.provenance["counted_layers"]


def test_ist_wrong_shape_is_named(ckpt_dir, r50_acdc90):
    blob = to_ist(r50_acdc90)
    blob["model_state_dict"]["module.bn1.running_mean"] = torch.zeros(3)
    torch.save(blob, ckpt_dir / "resnet50_acdc_90.pth")
    with pytest.raises(CheckpointError, match=r"wrong shapes.*bn1\.running_mean"):
        create_model("resnet50/acdc-90")


def test_ist_wrong_sparsity_is_named(ckpt_dir, r50_acdc90):
    torch.save(to_ist(r50_acdc90), ckpt_dir / "resnet50_acdc_95.pth")
    with pytest.raises(CheckpointError, match=r"resnet50/acdc-95: sparsity check failed: 0\.9000.*0\.9500"):
        create_model("resnet50/acdc-95")


# --------------------------------------------------------------------------------------------------- RigL


def test_resnet_tf_layout_loads_with_tf_max_pool(ckpt_dir, r50_acdc90):
    blob = to_resnet_tf(r50_acdc90)
    assert {"initial_conv.conv.weight", "layer2.block.0.shortcut.bn.running_var", "layer4.block.2.conv3.bn.weight"
            } <= set(blob["model_state_dict"])
    torch.save(blob, ckpt_dir / "rigl_erk5x_90.pth")
    model = create_model("resnet50/rigl-90")
    reference = small_resnet50()
    reference.load_state_dict(r50_acdc90.state_dict())
    reference.maxpool = resnet.tf_same_maxpool()
    torch.testing.assert_close(out(model.module), out(reference))
    # the TF padding is not cosmetic: torchvision's symmetric pool gives other outputs
    assert not torch.allclose(out(model.module), out(r50_acdc90))
    assert model.provenance["interpolation"] == "bicubic"


# ------------------------------------------------------------------------------------------ lottery tickets


def test_lottery_ticket_mask_times_weight(ckpt_dir, r50_lt):
    weights, masks = to_lottery_ticket(r50_lt)
    torch.save(weights, ckpt_dir / "resnet50_dyn4_2_checkpoint.pth")
    torch.save(masks, ckpt_dir / "resnet50_dyn4_2_mask.pth")
    model = create_model("resnet50/lt-62.575")
    torch.testing.assert_close(out(model.module), out(r50_lt))
    assert model.provenance["state_index"] == 2
    assert model.provenance["measured_sparsity"] == pytest.approx(1 - 0.62575, abs=1e-5)
    assert "conv1" in model.provenance["counted_layers"]


def test_lottery_ticket_at_another_level_names_the_level(ckpt_dir, r50_lt):
    weights, masks = to_lottery_ticket(r50_lt)  # a 62.575 % file saved under the 79.122 % name
    torch.save(weights, ckpt_dir / "resnet50_dyn4_1_checkpoint.pth")
    torch.save(masks, ckpt_dir / "resnet50_dyn4_1_mask.pth")
    with pytest.raises(CheckpointError, match=r"check failed.*matches resnet50/lt-62\.575 \(state index k=2\)"):
        create_model("resnet50/lt-79.122")


def test_lottery_ticket_mask_without_weight_fails(ckpt_dir, r50_lt):
    weights, masks = to_lottery_ticket(r50_lt)
    masks["model.layer9.0.conv1.weight"] = torch.ones(1)
    torch.save(weights, ckpt_dir / "resnet50_dyn4_2_checkpoint.pth")
    torch.save(masks, ckpt_dir / "resnet50_dyn4_2_mask.pth")
    with pytest.raises(CheckpointError, match="mask file has 1 keys with no weight"):
        create_model("resnet50/lt-62.575")


def test_lottery_ticket_missing_mask_file(ckpt_dir, r50_lt):
    torch.save(to_lottery_ticket(r50_lt)[0], ckpt_dir / "resnet50_dyn4_2_checkpoint.pth")
    with pytest.raises(MissingFileError, match=r"resnet50_dyn4_2_mask\.pth is missing.*authors"):
        create_model("resnet50/lt-62.575")


# --------------------------------------------------------------------------------------------------- dense


def test_dense_from_torch_home(ckpt_dir, tmp_path, monkeypatch):
    source = randomize_bn(torchvision.models.resnet18(), 3)
    path = place_dense("resnet18/dense", source, tmp_path, monkeypatch)
    model = create_model("resnet18/dense")
    torch.testing.assert_close(out(model.module), out(source))
    assert model.provenance["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert model.provenance["source_file"] == str(path) and model.provenance["measured_sparsity"] < 1e-3
    assert model.class_names == imagenet_classes()


def test_dense_file_with_wrong_hash_is_refused(ckpt_dir, tmp_path):
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18-f37072fd.pth")
    with pytest.raises(CheckpointError, match=r"sha256 .* not the f37072fd"):
        create_model("resnet18/dense")


def test_dense_missing_offline_says_file_url_and_folder(ckpt_dir, tmp_path):
    with pytest.raises(MissingFileError) as err:
        create_model("resnet50/dense")
    msg = str(err.value)
    assert "resnet50-11ad3fa6.pth" in msg and "https://download.pytorch.org/models/" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg


def test_v2_dense_records_its_eval_resize(ckpt_dir, tmp_path, monkeypatch):
    place_dense("resnet50/dense", small_resnet50(), tmp_path, monkeypatch)
    assert create_model("resnet50/dense").provenance["eval_resize"] == 232


# ---------------------------------------------------------------------------------------------- substitutes


def test_acdc_substitute_is_global_magnitude_pruning_of_v1(ckpt_dir, tmp_path, monkeypatch):
    source = randomize_bn(small_resnet50(), 4)
    place_dense("resnet50/dense-v1", source, tmp_path, monkeypatch)
    with pytest.raises(MissingFileError, match="resnet50_acdc_80.pth"):
        create_model("resnet50/acdc-80")
    model = create_model("resnet50/acdc-80", substitute=True)
    prov = model.provenance
    assert prov["substitute"] == get_entry("resnet50/acdc-80").substitute_note
    assert prov["parent"] == "resnet50/dense-v1" and prov["pruning"]["scope"] == "global"
    layers = counted_layers(model.module, exclude=(), kinds=(nn.Conv2d, nn.Linear))
    zeros, total = zero_counts(layers)
    assert zeros == round(0.8 * total) == prov["zeros"]
    # global: every kept weight is at least as large as every pruned one of the parent, whatever its layer
    parent = dict(source.named_modules())
    kept = torch.cat([m.weight[m.weight != 0].abs() for _, m in layers])
    gone = torch.cat([parent[n].weight[m.weight == 0].abs() for n, m in layers])
    assert kept.min() >= gone.max()


def test_gmp_substitute_is_layerwise(ckpt_dir, tmp_path, monkeypatch):
    place_dense("resnet18/dense", torchvision.models.resnet18(), tmp_path, monkeypatch)
    model = create_model("resnet18/gmp", substitute=True)
    for name, layer in counted_layers(model.module):
        assert int((layer.weight == 0).sum()) == round(0.85 * layer.weight.numel()), name
    assert int((model.module.conv1.weight == 0).sum()) == 0
    assert model.provenance["pruning"]["scope"] == "layerwise"
