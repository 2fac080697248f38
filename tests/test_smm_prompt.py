"""SMM's sample-specific mask prompt (issue #35, ``RunSpec(prompt="smm")``), pinned against the reference.

The expectations are written from ``tmlr-group/SMM``'s code as read, not run: ``instance_model.py`` ``AttributeNet``
(3x3 convs 3 -> 8 -> 16 -> 32 -> 64 (-> 128 in the 6-layer one), each with BatchNorm and ReLU, a 2x2 max-pool after
the first log2(patch) of them, a last 3x3 conv to 3 channels), ``InstancewiseVisualPrompt.forward`` (the mask viewed as
[B, 3, n*n, 1], expanded to [B, 3, n*n, p*p], viewed as [B, 3, n, n, p, p], dims 3 and 4 swapped, reshaped to
[B, 3, n*p, n*p]: row i*p + k, column j*p + l reads patch (i, j), so every p x p patch is one value, then
``x + program * mask`` on the normalised image) and ``cfg.py`` ``get_config`` / ``instancewise_vp.py`` (two Adams, the
pattern's at 0.01 and the generator's at ``attr_lr``, both MultiStepLR at int(0.5 E) and int(0.72 E), the pattern's by
0.1 and the generator's by ``attr_gamma``). The shared prompt tests (shapes, the first steps, the spec, the killed and
resumed smoke run) are parametrised over every prompt in tests/test_prompts_beyond.py.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from tiny_vp import tiny_task

from vpcost_utils.config import RunSpec
from vpcost_utils.errors import SpecError
from vpcost_utils.vp import train_vp as train
from vpcost_utils.vp import visual_prompts as vps

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _conv_outputs(generator: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The output shape of every conv of ``generator`` on ``x``, in call order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        generator(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


# --- the generator: AttributeNet's layers --------------------------------------------------------------------------

@pytest.mark.parametrize(("layers", "size"), [(5, 32), (6, 32), (5, 224)])
def test_the_generators_layers_are_the_references_for_its_depth_at_patch_8(layers, size):
    generator = vps.MaskGenerator(layers).eval()
    widths = [8, 16, 32, 64] + ([128] if layers == 6 else [])
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    shapes = [(w, c_in, 3, 3) for c_in, w in zip([3, *widths], [*widths, 3], strict=True)]
    assert [tuple(c.weight.shape) for c in convs] == shapes
    assert all(c.stride == (1, 1) and c.padding == (1, 1) and c.bias is not None for c in convs)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == widths, "a BatchNorm after every conv but the last"
    assert sum(isinstance(m, torch.nn.ReLU) for m in generator.modules()) == len(widths)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in generator.modules()) == 3, "log2(8) pools"
    # the pools follow convs 1-3: sizes S, S/2, S/4, S/8, S/8 (, S/8), and the mask has S/8 = n patches a side
    sides = [size, size // 2, size // 4] + [size // 8] * (len(widths) - 3)
    expected = [(1, w, s, s) for w, s in zip(widths, sides, strict=True)] + [(1, 3, size // 8, size // 8)]
    assert _conv_outputs(generator, torch.zeros(1, 3, size, size)) == expected
    # the reference's parameter count for ResNets: 224 + 1168 + 4640 + 18496 + 1731 weights and biases, 240 in BN
    assert layers == 6 or sum(p.numel() for p in generator.parameters()) == 26499


def test_other_patch_sizes_pool_after_the_first_log2_convs_and_unbuildable_ones_are_refused():
    for patch, pools in ((1, 0), (4, 2), (16, 4)):
        g = vps.MaskGenerator(5, patch).eval()
        assert sum(isinstance(m, torch.nn.MaxPool2d) for m in g.modules()) == pools
        assert g(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32 // patch, 32 // patch)
    assert vps.MaskGenerator(6, 32).eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 2, 2)
    for layers, patch in ((5, 32), (4, 8), (7, 8), (5, 3)):  # the reference's ValueErrors
        with pytest.raises(ValueError):
            vps.MaskGenerator(layers, patch)


# --- the patch-wise interpolation and the prompt's formula ---------------------------------------------------------

@pytest.mark.parametrize("patch", [1, 2, 8])
def test_the_patch_wise_interpolation_makes_each_patch_one_value_as_the_references_reshape(patch):
    small = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(patch))
    big = vps.spread_patches(small, patch)
    n = 4 * patch
    assert big.shape == (2, 3, n, n)
    expected = torch.empty(2, 3, n, n)
    for r in range(n):  # the reference's reshape: row i*p + k, column j*p + l reads patch (i, j)
        for c in range(n):
            expected[:, :, r, c] = small[:, :, r // patch, c // patch]
    assert torch.equal(big, expected)
    assert torch.equal(big, F.interpolate(small, scale_factor=patch, mode="nearest"))


def test_the_prompt_adds_theta_times_the_spread_mask_to_the_normalised_resized_image():
    prompt = vps.SMMPrompt(canvas=16, input_size=8, mean=MEAN, std=STD, seed=3).eval()
    assert not prompt.theta.any() and prompt.theta.shape == (3, 16, 16), "the reference's program: zeros"
    with torch.no_grad():
        prompt.theta.normal_(generator=torch.Generator().manual_seed(0))
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out = prompt(images)
    z = (F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
         - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    raw = prompt.generator(z)  # read from the normalised image; no sigmoid, no clamp
    assert raw.shape == (2, 3, 2, 2) and raw.min() < 0
    mask = raw.repeat_interleave(8, 2).repeat_interleave(8, 3)
    torch.testing.assert_close(out, z + prompt.theta.detach() * mask, rtol=0, atol=1e-6)
    assert not torch.equal(out[0] - z[0], out[1] - z[1]), "a mask per sample"
    # theta = 0: the watermark prompt's image exactly, whatever the generator says
    zero = vps.SMMPrompt(16, 8, MEAN, STD).eval()
    torch.testing.assert_close(zero(images), vps.WatermarkPrompt(16, 8, MEAN, STD)(images), rtol=0, atol=0)
    assert torch.equal(zero.frame(), zero.theta)


def test_gradients_reach_the_pattern_and_the_generator_and_never_the_backbone():
    prompt = vps.SMMPrompt(16, 8, MEAN, STD)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.Flatten(), torch.nn.Linear(196, 5))
    backbone.requires_grad_(False)
    images = torch.rand(4, 3, 8, 8)

    def grads() -> dict[str, torch.Tensor]:
        prompt.zero_grad(set_to_none=True)
        backbone(prompt(images)).logsumexp(1).sum().backward()
        return {n: p.grad for n, p in prompt.named_parameters()}

    at_start = grads()  # theta = 0: the mask's gradient is theta times the output's, zero (the reference's too)
    assert at_start["theta"].abs().sum() > 0
    assert all(not g.any() for n, g in at_start.items() if n != "theta")
    with torch.no_grad():
        prompt.theta.normal_()
    moved = grads()
    # theta; the 4 hidden convs' and BNs' weights, the BNs' biases (a conv's bias before a BN gets none); the last conv
    learning = [n for n in moved if n == "theta" or not (n.startswith("generator.blocks") and n.endswith(".0.bias"))]
    assert len(learning) == 1 + 4 * 3 + 2
    assert all(moved[n].abs().sum() > 0 for n in learning), [n for n in learning if not moved[n].any()]
    assert all(p.grad is None for p in backbone.parameters())


def test_the_generators_initial_weights_follow_the_seed_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = vps.create_prompt("smm", 16, 8, MEAN, STD, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = vps.create_prompt("smm", 16, 8, MEAN, STD, seed=4)
    c = vps.create_prompt("smm", 16, 8, MEAN, STD, seed=5)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(a.generator.out.weight, c.generator.out.weight)


def test_a_canvas_not_in_whole_patches_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"260-px canvas is not divisible by 8.*RunSpec.canvas.*256"):
        vps.SMMPrompt(260, 32, MEAN, STD)


# --- the optimizer: SMM's two learning rates and drops ---------------------------------------------------------------

def _lrs(task: train.VPTask) -> list[float]:
    return [g["lr"] for g in task.optimizer.param_groups]


def test_the_pattern_and_the_generator_train_in_two_groups_with_the_resnet_configuration():
    task, backbone, _ = tiny_task(prompt="smm")
    assert task.prompt.config == vps.SMM_CONFIGS["cnn"] and task.prompt.config.layers == 5
    theta, generator = task.optimizer.param_groups
    assert theta["params"] == [task.prompt.theta]
    assert {id(p) for p in generator["params"]} == {id(p) for p in task.prompt.generator.parameters()}
    assert not any(p.requires_grad for p in backbone.parameters())
    assert isinstance(task.optimizer, torch.optim.Adam) and "gamma" not in generator
    # epochs = 2: the drops at max(1, int(0.5 * 2)) = 1 and max(1, int(0.72 * 2)) = 1, both groups by 0.1
    assert _lrs(task) == [0.01, 0.01]
    task.begin_epoch(0)
    task.step(torch.arange(4), 0)
    task.end_epoch(0)
    assert _lrs(task) == pytest.approx([1e-4, 1e-4])


def test_on_a_transformer_the_generator_has_six_layers_lr_0001_and_never_drops(monkeypatch):
    assert train.backbone_family("deit_tiny/w4a4") == train.backbone_family("swin_tiny/fp32") == "vit"
    assert train.backbone_family("resnet50/acdc-90") == train.backbone_family("smallcnn/dense") == "cnn"
    assert train.backbone_family("tiny") == "cnn"  # outside the registry: by the name
    monkeypatch.setattr(train, "backbone_family", lambda name: "vit")
    task, _, _ = tiny_task(prompt="smm")
    assert task.prompt.config == vps.SMMConfig(layers=6, generator_lr=0.001, generator_gamma=1.0)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in task.prompt.generator.modules()) == 6
    assert _lrs(task) == pytest.approx([0.01, 0.001])
    task.begin_epoch(0)
    task.step(torch.arange(4), 0)
    task.end_epoch(0)
    assert _lrs(task) == pytest.approx([1e-4, 0.001])


def test_the_other_prompts_keep_one_group_and_multisteplr():
    for prompt in (None, "watermark", "autovp-scale"):
        task, _, _ = tiny_task(prompt=prompt)
        assert len(task.optimizer.param_groups) == 1
        assert type(task.scheduler) is torch.optim.lr_scheduler.MultiStepLR and task.scheduler.gamma == 0.1


# --- the checkpoint: the generator's weights, BatchNorm statistics and Adam state -------------------------------------

def test_a_checkpointed_state_restores_the_generator_its_statistics_and_both_adam_groups():
    task, _, _ = tiny_task(prompt="smm")
    task.begin_epoch(0)
    for step in range(3):
        task.step(torch.arange(4 * (step % 3), 4 * (step % 3) + 4), step)
    state = task.state()
    saved = state["prompt"]
    assert {"theta", "generator.out.weight", "generator.blocks.0.1.running_mean",
            "generator.blocks.3.1.num_batches_tracked"} <= set(saved)
    assert "mean" not in saved and "std" not in saved, "the prompt's fixed buffers stay out"
    assert int(saved["generator.blocks.0.1.num_batches_tracked"]) == 3
    assert len(state["optimizer"]["param_groups"]) == 2
    buffer = io.BytesIO()  # through a file, as the Checkpointer: the state holds the live tensors
    torch.save(state, buffer)
    buffer.seek(0)
    fresh, _, _ = tiny_task(prompt="smm")
    fresh.load_state(torch.load(buffer, weights_only=True))
    for (name, x), y in zip(task.prompt.state_dict().items(), fresh.prompt.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    task.prompt.train()
    fresh.prompt.train()
    torch.manual_seed(0)
    task.step(torch.arange(4), 3)
    fresh.step(torch.arange(4), 3)
    for (name, x), y in zip(task.prompt.state_dict().items(), fresh.prompt.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_the_older_prompts_checkpoints_hold_what_they_did():
    for prompt, names in ((None, {"theta"}), ("watermark", {"theta"}), ("autovp-scale", {"theta", "scale"})):
        task, _, _ = tiny_task(prompt=prompt)
        assert set(task.state()["prompt"]) == names


# --- the spec -----------------------------------------------------------------------------------------------------

def test_smm_is_refused_with_the_linear_probe_and_outside_vp_and_has_its_own_run_id():
    with pytest.raises(SpecError, match="only applies to visual prompting"):
        RunSpec("smallcnn/dense", "digits", method="lp", prompt="smm")
    with pytest.raises(SpecError, match="only applies to visual prompting"):
        RunSpec("tinyclip/dense", "synth_colours", task="clip", method="vp", prompt="smm")
    spec = RunSpec("smallcnn/dense", "digits", prompt="smm")
    assert spec.run_id not in {spec.replace(prompt=p).run_id for p in (None, "watermark", "autovp-scale")}
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert RunSpec("smallcnn/dense", "digits").run_id == "69bcd99e5c67"  # pinned before the field existed
