"""EfficientNet-Lite0 compressed here: exact one-shot pruning, BatchNorm re-estimation, PTQ through "SAME" convs."""

import io

import pytest
import torch
from torch import nn

from vpcost_utils.built import efficientnet_lite_compressed as lite
from vpcost_utils.models.efficientnet_lite import build_timm
from vpcost_utils.models.prune import measure_sparsity
from vpcost_utils.models.quantize import fake_quantize, quantized_bits

torch.manual_seed(0)


@pytest.fixture(scope="module")
def random_lite0() -> nn.Module:
    return build_timm(0).eval()


def test_pruned_layers_are_the_dense_convs_but_the_stem(random_lite0):
    names = [n for n, _ in lite.pruned_layers(random_lite0)]
    assert "conv_stem" not in names and "conv_head" in names
    assert all(m.groups == 1 for _, m in lite.pruned_layers(random_lite0))
    depthwise = [n for n, m in random_lite0.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and not set(depthwise) & set(names)


@pytest.mark.parametrize("percent", [30, 50])
def test_one_shot_pruning_hits_the_sparsity_exactly_and_leaves_the_rest_dense(random_lite0, percent):
    import copy

    model = copy.deepcopy(random_lite0)
    before = {n: p.clone() for n, p in model.named_parameters()}
    report = lite.prune_one_shot(model, percent)
    layers = lite.pruned_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    assert report["zeros"] == round(percent / 100 * total)
    assert measure_sparsity(model, layers) == pytest.approx(percent / 100, abs=1 / total)
    pruned = {f"{n}.weight" for n, _ in layers}
    for name, p in model.named_parameters():
        if name not in pruned:  # depthwise convs, stem, BatchNorm, classifier: untouched
            assert torch.equal(p, before[name]), name


def test_batchnorm_reestimation_sets_the_running_mean_to_the_data_mean(random_lite0):
    import copy

    model = copy.deepcopy(random_lite0)
    batches = [torch.randn(4, 3, 64, 64) + 0.7 for _ in range(3)]
    lite.reestimate_batchnorm(model, batches)
    with torch.no_grad():
        stem = torch.cat([model.conv_stem(b) for b in batches])
    assert torch.allclose(model.bn1.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-4)
    assert not model.training and model.bn1.momentum == random_lite0.bn1.momentum


def test_ptq_quantizes_the_same_padding_convs_and_survives_a_save(random_lite0):
    calib = [torch.randn(4, 3, 64, 64)]
    q = fake_quantize(random_lite0, 8, calib, per_channel=True)
    same_convs = [n for n, m in random_lite0.named_modules() if type(m).__name__ == "Conv2dSame"]
    bits = quantized_bits(q)
    assert same_convs and set(same_convs) <= set(bits)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, out = random_lite0(x), q(x)
    assert (out - ref).abs().max() < 0.2 * ref.abs().max()  # 8 bits: close to float, not equal
    buffer = io.BytesIO()
    torch.save(q, buffer)
    buffer.seek(0)
    again = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(again(x), out)


def test_the_real_pruned_model_records_its_sparsity_and_agreement():
    from vpcost_utils.errors import MissingFileError
    from vpcost_utils.models import create_model

    try:
        model = create_model("efficientnet_lite0/prune-30")
    except MissingFileError as exc:
        pytest.skip(f"real EfficientNet-Lite0 weights not in the test cache ({exc}); `make fetch` removes this skip")
    prov = model.provenance
    assert prov["measured_sparsity"] == pytest.approx(0.30, abs=1e-6)
    agreement = prov["agreement"]
    assert agreement["held_out_photographs"] == ["chelsea", "coffee", "grace_hopper"]
    assert 75 <= agreement["agreement_224"] <= 100 and prov["parent"] == "efficientnet_lite0/dense"  # measured 82.8
    assert agreement["kl_224"] >= 0 and set(agreement["labelled"]) == set(agreement["held_out_photographs"])
    assert model.mean == create_model("efficientnet_lite0/dense").mean
