"""Magnitude pruning hits the requested remaining fraction exactly on the counted layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.models.prune import counted_layers, magnitude_prune, measure_sparsity


class SmallNet(nn.Module):
    """Layer names unlike a ResNet's, a Linear head and biases, as in the smoke profile's CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, bias=False))
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(torch.relu(self.stem(x)))
        return self.head(x.mean((2, 3)))


@pytest.fixture
def net() -> SmallNet:
    torch.manual_seed(0)
    return SmallNet()


def all_layers(module: nn.Module):
    return counted_layers(module, exclude=(), kinds=(nn.Conv2d, nn.Linear))


def zeros(layer: nn.Module) -> int:
    return int((layer.weight == 0).sum())


def test_counted_layers_exclude_only_the_named_module():
    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 1)
            self.layer1 = nn.Sequential(nn.Module())
            self.layer1[0].conv1 = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 2)

    names = [n for n, _ in counted_layers(Stem())]
    assert names == ["layer1.0.conv1"]  # stem conv1 out, the block's conv1 in, Linear not a counted kind
    assert [n for n, _ in counted_layers(Stem(), exclude=("layer*",), kinds=(nn.Conv2d, nn.Linear))] == ["conv1", "fc"]


@pytest.mark.parametrize("remaining", [1.0, 0.5, 0.2, 0.0131, 0.0])
def test_global_pruning_is_exact(net, remaining):
    layers = all_layers(net)
    total = sum(m.weight.numel() for _, m in layers)
    result = magnitude_prune(net, remaining, layers=layers)
    assert sum(zeros(m) for _, m in layers) == round((1 - remaining) * total) == result["zeros"]
    assert result["counted_params"] == total
    assert result["measured_remaining"] == pytest.approx(remaining, abs=1 / total)
    assert measure_sparsity(net, layers) == pytest.approx(result["measured_sparsity"])


def test_global_pruning_removes_the_smallest_magnitudes_and_leaves_plain_tensors(net):
    layers = all_layers(net)
    before = {n: m.weight.detach().clone() for n, m in layers}
    biases = {n: m.bias.detach().clone() for n, m in layers if m.bias is not None}
    magnitude_prune(net, 0.3, layers=layers)
    kept = torch.cat([m.weight[m.weight != 0].abs().flatten() for _, m in layers])
    gone = torch.cat([before[n][m.weight == 0].abs() for n, m in layers])
    assert kept.min() >= gone.max()
    for n, m in layers:
        assert isinstance(m.weight, nn.Parameter) and not hasattr(m, "weight_orig") and not m._forward_pre_hooks
        torch.testing.assert_close(m.weight[m.weight != 0], before[n][m.weight != 0])  # survivors unchanged
    for n, b in biases.items():
        torch.testing.assert_close(dict(layers)[n].bias, b)  # biases are never pruned


def test_layerwise_pruning_is_exact_per_layer(net):
    layers = all_layers(net)
    result = magnitude_prune(net, 0.25, scope="layerwise", layers=layers)
    for name, m in layers:
        assert zeros(m) == round(0.75 * m.weight.numel()), name
    assert result["scope"] == "layerwise" and result["counted_layers"] == [n for n, _ in layers]


def test_ties_still_give_the_exact_count():
    layer = nn.Linear(10, 10, bias=False)
    nn.init.ones_(layer.weight)
    magnitude_prune(layer, 0.37, layers=[("", layer)])
    assert zeros(layer) == 63


def test_default_layers_skip_conv1_only():
    model = nn.Module()
    model.conv1, model.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)
    result = magnitude_prune(model, 0.5)
    assert zeros(model.conv1) == 0 and zeros(model.conv2) == 72 and result["counted_layers"] == ["conv2"]


def test_pruning_again_reaches_the_new_target(net):
    layers = all_layers(net)
    total = sum(m.weight.numel() for _, m in layers)
    magnitude_prune(net, 0.5, layers=layers)
    magnitude_prune(net, 0.1, layers=layers)
    assert sum(zeros(m) for _, m in layers) == round(0.9 * total)


def test_finetune_runs_with_masks_attached_and_keeps_zeros(net):
    layers = all_layers(net)
    seen = {}

    def finetune(module: nn.Module) -> None:
        seen["masked"] = all(hasattr(m, "weight_mask") for _, m in layers)
        opt = torch.optim.SGD(module.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            module(torch.randn(4, 3, 8, 8)).pow(2).mean().backward()
            opt.step()

    before = {n: m.weight.detach().clone() for n, m in layers}
    result = magnitude_prune(net, 0.4, layers=layers, finetune=finetune)
    total = sum(m.weight.numel() for _, m in layers)
    assert seen["masked"] and result["finetuned"]
    assert sum(zeros(m) for _, m in layers) == round(0.6 * total)
    assert any(not torch.equal(m.weight[m.weight != 0], before[n][m.weight != 0]) for n, m in layers)


def test_bad_arguments_are_named(net):
    with pytest.raises(SpecError, match="remaining must be a fraction"):
        magnitude_prune(net, 80)
    with pytest.raises(UnknownNameError, match="'layerwise'"):
        magnitude_prune(net, 0.5, scope="layer")
    with pytest.raises(SpecError, match="no layers"):
        magnitude_prune(net, 0.5, layers=[])
    with pytest.raises(SpecError, match="no counted layers"):
        measure_sparsity(nn.Linear(2, 2))
