"""LSQ arithmetic and the post-training fake-quantization substitute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vpcost_utils.models.lsq import LsqAct, LsqLinear, fake_quant, mse_step, qrange
from vpcost_utils.models.quantize import (
    FakeQuantConv2d,
    FakeQuantLinear,
    count_distinct_weights,
    fake_quantize,
    quantized_bits,
    synthetic_calibration,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn(seed: int = 0) -> nn.Module:
    """The smoke profile's kind of network: conv + BN + ReLU blocks, pooling, a linear head."""
    torch.manual_seed(seed)
    blocks = [nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
              for cin, cout in ((3, 16), (16, 32), (32, 32))]
    model = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    with torch.no_grad():  # running statistics that are not the identity, so BN matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_qrange():
    assert qrange(2, True) == (-2, 1) and qrange(4, False) == (0, 15) and qrange(8, True) == (-128, 127)


def test_fake_quant_by_hand():
    w = torch.tensor([-1.0, -0.3, 0.2, 0.9])
    # /0.4 = [-2.5, -0.75, 0.5, 2.25] -> clamp [-2, 1] -> round half to even -> [-2, -1, 0, 1]
    torch.testing.assert_close(fake_quant(w, torch.tensor(0.4), -2, 1), torch.tensor([-0.8, -0.4, 0.0, 0.4]))
    x = torch.tensor([-1.0, 0.1, 0.4, 0.7, 5.0])
    # (x - 0.1) / 0.5 = [-2.2, 0, 0.6, 1.2, 9.8] -> clamp [0, 3] -> round -> [0, 0, 1, 1, 3]
    out = fake_quant(x, torch.tensor(0.5), 0, 3, torch.tensor(0.1))
    torch.testing.assert_close(out, torch.tensor([0.1, 0.1, 0.6, 0.6, 1.6]))


def test_vvtq_layers_index_steps_by_bit_width():
    act = LsqAct(3, signed=False, offset=True)
    act.alpha.data = torch.arange(1, 8, dtype=torch.float) / 10  # alpha[b - 2] is used: 0.2 at 3 bits
    act.beta.data.fill_(0.0)
    torch.testing.assert_close(act(torch.tensor([0.25, 5.0])), torch.tensor([0.2, 1.4]))  # 7 * 0.2 caps it
    lin = LsqLinear(4, 1, bias=False, bits=2)
    lin.weight.data = torch.tensor([[0.1, -0.6, 0.35, 2.0]])
    lin.alpha.data.fill_(0.5)
    torch.testing.assert_close(lin.quantized_weight(), torch.tensor([[0.0, -0.5, 0.5, 0.5]]))
    assert lin.stored_bits() == 2 and act.stored_bits() == 3


def test_mse_step_is_a_local_optimum():
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    for bits in (2, 4):
        qmin, qmax = qrange(bits, True)
        step = mse_step(x, qmin, qmax)

        def err(s, qmin=qmin, qmax=qmax):
            return float((fake_quant(x, s, qmin, qmax) - x).pow(2).mean())

        assert err(step) <= min(err(step * 0.9), err(step * 1.1))
        assert err(step) < err(x.abs().max() / qmax)  # better than no clipping
    per_channel = mse_step(torch.randn(6, 3, 3, 3), -8, 7, per_channel=True)
    assert per_channel.shape == (6, 1, 1, 1) and bool((per_channel > 0).all())


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_at_most_2_to_the_k_values_per_tensor(bits):
    model = small_cnn()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    quant = fake_quantize(model, bits, torch.randn(16, 3, 32, 32))
    layer_bits = quantized_bits(quant)
    assert layer_bits == {"0.0": 8, "1.0": bits, "2.0": bits, "5": 8}  # first and last layers at 8 bits
    counts = count_distinct_weights(quant)
    assert all(counts[name] <= 2**b for name, b in layer_bits.items())
    assert count_distinct_weights(model)["1.0"] > 2**8  # the float weights had many more
    # the input network is untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())
    assert not any(isinstance(m, (FakeQuantConv2d, FakeQuantLinear)) for m in model.modules())


def test_error_shrinks_as_bits_grow():
    model = small_cnn(1)
    calib = [torch.randn(16, 3, 32, 32) for _ in range(2)]
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        errors = [relative_error(fake_quantize(model, b, calib, first_last_bits=b)(x), reference) for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05 and errors[0] > 0.2


def test_activation_sign_follows_the_calibration_data():
    quant = fake_quantize(small_cnn(), 4, torch.randn(8, 3, 32, 32))
    assert quant[0][0].input_quant.signed  # normalised image: negative values
    assert not quant[1][0].input_quant.signed  # after ReLU: unsigned grid, twice the resolution
    assert quant[0][0].weight_quant.step.dim() == 0  # per tensor by default


def test_per_channel_weights():
    quant = fake_quantize(small_cnn(), 2, torch.randn(8, 3, 32, 32), per_channel=True)
    w = quant[1][0].quantized_weight()
    assert quant[1][0].weight_quant.step.shape == (32, 1, 1, 1)
    assert max(torch.unique(row).numel() for row in w.reshape(32, -1)) <= 4


def test_skip_leaves_layers_float():
    quant = fake_quantize(small_cnn(), 3, torch.randn(8, 3, 32, 32), skip=["1.*"])
    assert type(quant[1][0]) is nn.Conv2d
    assert quantized_bits(quant) == {"0.0": 8, "2.0": 3, "5": 8}


def test_deterministic_and_accepts_loader_pairs():
    model, data = small_cnn(), torch.randn(16, 3, 32, 32)
    a = fake_quantize(model, 3, [data[:8], data[8:]])
    b = fake_quantize(model, 3, [(data[:8], torch.zeros(8)), (data[8:], torch.zeros(8))])
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_gradients_reach_input_and_steps():
    quant = fake_quantize(small_cnn(), 2, torch.randn(8, 3, 32, 32)).train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    quant(x).square().sum().backward()
    assert x.grad.abs().sum() > 0 and quant[1][0].weight_quant.step.grad is not None


def test_vision_transformer_is_quantized_too():
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=24,
                            depth=1, num_heads=3, num_classes=10).eval()
    quant = fake_quantize(vit, 3, torch.randn(4, 3, 32, 32))
    layer_bits = quantized_bits(quant)
    assert layer_bits["patch_embed.proj"] == 8 and layer_bits["head"] == 8
    assert layer_bits["blocks.0.attn.qkv"] == 3 and layer_bits["blocks.0.mlp.fc2"] == 3
    counts = count_distinct_weights(quant)
    assert all(counts[n] <= 2**b for n, b in layer_bits.items())


def test_synthetic_calibration_shape_and_scale():
    batches = synthetic_calibration(40, n=10, batch_size=4)
    assert [b.shape[0] for b in batches] == [4, 4, 2] and batches[0].shape[1:] == (3, 40, 40)
    x = torch.cat(batches)
    assert -2.2 < float(x.min()) < 0 < float(x.max()) < 2.7  # ImageNet-normalised pixels in [0, 1]
    assert torch.equal(x, torch.cat(synthetic_calibration(40, n=10, batch_size=4)))


def test_bad_bit_width_and_empty_calibration():
    with pytest.raises(ValueError, match="2..8"):
        fake_quantize(small_cnn(), 1, torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="calibration"):
        fake_quantize(small_cnn(), 4, [])
