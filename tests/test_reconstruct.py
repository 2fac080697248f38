"""Layer-wise reconstruction pruning: exact sparsity, and the kept weights absorb the removed ones' error."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json

import pytest
import torch
from torch import nn

from vpcost_utils.built import distill as recovery
from vpcost_utils.built.reconstruct import layer_inputs, reconstruct_prune, sparsegpt_prune
from vpcost_utils.errors import SpecError


def correlated_inputs(rows: int = 3000, cols: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) @ torch.randn(cols, cols, generator=g) * 0.3 + 1.0


def magnitude(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    order = w.abs().flatten().argsort(stable=True)
    out = w.clone().flatten()
    out[order[: round(sparsity * w.numel())]] = 0
    return out.view_as(w)


@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_exactly_the_asked_fraction_goes_and_the_output_error_beats_magnitude(sparsity):
    x = correlated_inputs()
    w = torch.randn(40, x.shape[1], generator=torch.Generator().manual_seed(1))
    new, keep = sparsegpt_prune(w, (x.T.double() @ x.double()) / len(x), sparsity, block=32)
    assert int((~keep).sum()) == round(sparsity * w.numel()) and bool((new[~keep] == 0).all())

    def err(v):
        return float(((x @ (w - v).T) ** 2).mean())

    assert err(new) < 0.8 * err(magnitude(w, sparsity))


def test_an_input_that_never_varies_on_the_calibration_images_does_not_break_it():
    x = correlated_inputs()
    x[:, 5] = 0.0  # a dead channel: its Hessian row and column are zero
    w = torch.randn(8, x.shape[1])
    new, keep = sparsegpt_prune(w, (x.T.double() @ x.double()) / len(x), 0.5)
    assert torch.isfinite(new).all() and int((~keep).sum()) == round(0.5 * w.numel())
    assert torch.equal(new[keep[:, 5], 5], w[keep[:, 5], 5])  # kept weights on the dead input are left alone


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 1), nn.ReLU(),
                         nn.Conv2d(32, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 10)).eval()


def pointwise(m: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, c) for n, c in m.named_modules() if isinstance(c, nn.Conv2d) and n != "0"]


def test_layers_are_calibrated_in_order_on_the_pruned_prefix_and_end_exactly_sparse():
    dense, batches = net(), [torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    ours = copy.deepcopy(dense)
    masks = reconstruct_prune(ours, pointwise(ours), batches, 0.5, progress=False)
    for (_, layer), m in zip(pointwise(ours), masks, strict=True):
        assert m.dtype == torch.bool and int((~m).sum()) == layer.weight.numel() // 2
        assert bool((layer.weight[~m] == 0).all())
    # the last layer's Hessian is the one its *pruned* predecessor produces, not the dense one's
    pruned_h = layer_inputs(ours, ours[4], batches)
    dense_h = layer_inputs(dense, dense[4], batches)
    assert not torch.allclose(pruned_h, dense_h)
    naive = copy.deepcopy(dense)
    for _, layer in pointwise(naive):
        with torch.no_grad():
            layer.weight.copy_(magnitude(layer.weight, 0.5))
    x = torch.cat(batches)
    with torch.no_grad():
        ref = dense(x)
        assert float(((ours(x) - ref) ** 2).mean()) < float(((naive(x) - ref) ** 2).mean())


def test_only_dense_pointwise_convolutions_are_reconstructed():
    with pytest.raises(ValueError, match="1x1"):
        layer_inputs(net(), net()[0], [torch.randn(2, 3, 8, 8)])


def test_the_reconstruct_recipe_keeps_its_first_mask_through_every_step(tmp_path):
    recipe = recovery.Recipe("sparse", sparsity=0.5, prune="reconstruct", steps=10, batch_size=8, pool=32, size=32,
                             lr=1e-3)
    student, info = recovery.build(recipe, net(), (0.5,) * 3, (0.5,) * 3, pointwise, tmp_path / "p.pt",
                                   progress=False)
    start = copy.deepcopy(net())
    from vpcost_utils.built.agreement import normalise
    from vpcost_utils.built.natural_images import calibration_crops

    calib = list(normalise(calibration_crops(recovery.RECONSTRUCT_CROPS, 32, 0), (0.5,) * 3, (0.5,) * 3).split(64))
    first = reconstruct_prune(start, pointwise(start), calib, 0.5, progress=False)
    for (_, layer), m in zip(pointwise(student), first, strict=True):
        assert torch.equal(layer.weight != 0, m)  # distillation moved the kept weights, never the mask
    assert info["measured_sparsity"] == 0.5


def test_the_pruning_method_enters_the_key_and_the_older_recipes_keep_theirs():
    gmp = recovery.Recipe("sparse", sparsity=0.5)
    # prune and photos are left out of the key at their defaults
    fields = {k: v for k, v in dataclasses.asdict(gmp).items() if k not in ("prune", "photos")}
    assert gmp.key() == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    assert dataclasses.replace(gmp, prune="reconstruct").key() != gmp.key()
    with pytest.raises(SpecError, match="unknown pruning method 'obc'"):
        recovery.Recipe("sparse", sparsity=0.5, prune="obc")
