"""Prompts beyond the paper's padding prompt (issue #35): BLM's / SMM's full-image watermark, AutoVP's learnable
input scale and SMM's sample-specific mask, pinned against the references' definitions, through the training step, in
the spec, and end to end (SMM's own pins: tests/test_smm_prompt.py).

The test-side references are written from the references' code (``tmlr-group/BayesianLM`` ``WatermarkingVR`` and
``train_vm.py``'s PIL ``Resize``; ``IBM/AutoVP`` ``Trainable_Resize`` with kornia's ``scale``, ``InputPadding``) with
PIL and plain loops, so they share no code with ``vp/visual_prompts.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_vp import tiny_task

from vpcost_utils.config import PROMPTS, RunSpec
from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.running.runs import execute
from vpcost_utils.vp import train_vp as train
from vpcost_utils.vp import visual_prompts as vps

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NEW = ("watermark", "autovp-scale", "smm")


def test_the_spec_and_the_prompt_registry_name_the_same_prompts():
    assert tuple(vps.PROMPT_CLASSES) == PROMPTS and PROMPTS[0] == "pad"


# --- shapes and gradients ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PROMPTS)
def test_each_prompt_gives_the_canvas_and_only_its_own_parameters_learn(name):
    torch.manual_seed(0)
    prompt = vps.create_prompt(name, 16, 8, MEAN, STD)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.Flatten(), torch.nn.Linear(196, 5))
    backbone.requires_grad_(False)
    if name == "smm":  # theta = 0 at the start multiplies the mask's gradient away: the generator learns from step 2
        with torch.no_grad():
            prompt.theta.normal_()
    out = prompt(torch.rand(3, 3, 8, 8))
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32
    backbone(out).logsumexp(1).sum().backward()
    params = {n: p for n, p in prompt.named_parameters() if not n.startswith("generator.")}
    assert set(params) == ({"theta", "scale"} if name == "autovp-scale" else {"theta"})
    if name == "smm":  # SMM's generator (tests/test_smm_prompt.py): its weights learn too; biases before a BN do not
        params.update((n, p) for n, p in prompt.named_parameters()
                      if n.endswith("weight") or n.startswith("generator.out"))
    for p in params.values():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())
    assert prompt.frame().shape == (3, 16, 16)
    with pytest.raises(ValueError, match="8-px images"):
        prompt(torch.rand(1, 3, 9, 9))


def _tiny_task(prompt: str | None):
    """A VPTask on a random frozen backbone and 12 random 16-px images (as test_beyond_ilm's): the step alone."""
    task, backbone, _ = tiny_task(prompt=prompt, mean=MEAN, std=STD)
    return task, backbone


@pytest.mark.parametrize("name", NEW)
def test_the_task_builds_the_named_prompt_and_one_optimizer_step_moves_every_prompt_parameter(name):
    task, backbone = _tiny_task(name)
    assert isinstance(task.prompt, vps.PROMPT_CLASSES[name])
    trained = [p for group in task.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in trained} == {id(p) for p in task.prompt.parameters()}
    assert not any(p.requires_grad for p in backbone.parameters())
    before = {n: p.detach().clone() for n, p in task.prompt.named_parameters()}
    task.begin_epoch(0)
    loss, logits, _ = task.step(torch.arange(8), 0)
    assert logits.shape == (8, 4) and torch.isfinite(loss)
    if name == "smm":  # the first step moves theta alone (theta = 0 zeroes the generator's gradient); the second both
        assert all(torch.equal(p, before[n]) for n, p in task.prompt.named_parameters() if n != "theta")
        task.step(torch.arange(4, 12), 1)
    for n, p in task.prompt.named_parameters():
        if not (n.startswith("generator.blocks") and n.endswith(".0.bias")):  # a conv bias before BN: no gradient
            assert not torch.equal(p, before[n]), n


def test_the_default_task_keeps_the_papers_padding_prompt():
    task, _ = _tiny_task(None)
    assert type(task.prompt) is vps.ExpansivePrompt


# --- the watermark: BLM's WatermarkingVR on the resized image -------------------------------------------------------

def test_the_watermark_on_a_constant_image_is_the_normalised_colour_plus_theta_unbounded():
    prompt = vps.WatermarkPrompt(canvas=8, input_size=4, mean=MEAN, std=STD)
    assert not prompt.theta.any(), "initialised to zero, as WatermarkingVR.program"
    pattern = torch.arange(3 * 8 * 8, dtype=torch.float32).view(3, 8, 8) / 10 - 5  # from -5 to +14: no clamp
    with torch.no_grad():
        prompt.theta.copy_(pattern)
    colour = torch.tensor([0.2, 0.6, 1.0]).view(1, 3, 1, 1)
    out = prompt(colour.expand(2, 3, 4, 4))
    expected = (colour - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1) + pattern
    torch.testing.assert_close(out, expected.expand(2, 3, 8, 8), rtol=0, atol=1e-6)
    assert out.max() > 14, "theta is added as it is: no sigmoid, no clamp"


def _pil_resized(image: np.ndarray, size: int) -> torch.Tensor:
    """The reference's input: ``transforms.Resize((size, size))`` on the PIL image (PIL's bilinear), ToTensor."""
    out = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize(("input_size", "canvas"), [(8, 24), (32, 224), (20, 12)])
def test_the_watermark_resizes_as_the_references_pil_resize_then_normalises_then_adds_theta(input_size, canvas):
    g = np.random.default_rng(input_size)
    image = g.integers(0, 256, (input_size, input_size, 3), dtype=np.uint8)
    prompt = vps.WatermarkPrompt(canvas, input_size, MEAN, STD)
    with torch.no_grad():
        prompt.theta.normal_(generator=torch.Generator().manual_seed(0))
    ours = prompt(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
    reference = (_pil_resized(image, canvas) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    reference = reference + prompt.theta.detach()
    # PIL resizes uint8 in two passes (rows, then columns), rounding after each, half a level each; ours stays in
    # float: the only difference, at most one level
    diff = ((ours - reference) * torch.tensor(STD).view(3, 1, 1)).abs().max()
    assert diff <= 1 / 255 + 1e-5, diff


# --- AutoVP's learnable scale -----------------------------------------------------------------------------------------

def _kornia_scale_by_hand(canvas_image: torch.Tensor, s: float) -> torch.Tensor:
    """kornia.geometry.transform.scale on one [C, H, W] image, pixel by pixel: the output pixel p reads the input at
    c + (p - c) / s, c = (size - 1) / 2, bilinearly, zero outside (``align_corners=True``, ``padding_mode='zeros'``)."""
    channels, h, w = canvas_image.shape
    src = canvas_image.double()
    out = torch.zeros(channels, h, w, dtype=torch.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def at(y: int, x: int) -> torch.Tensor:
        return src[:, y, x] if 0 <= y < h and 0 <= x < w else torch.zeros(channels, dtype=torch.float64)

    for py in range(h):
        for px in range(w):
            y, x = cy + (py - cy) / s, cx + (px - cx) / s
            y0, x0 = math.floor(y), math.floor(x)
            fy, fx = y - y0, x - x0
            out[:, py, px] = ((1 - fy) * (1 - fx) * at(y0, x0) + (1 - fy) * fx * at(y0, x0 + 1)
                              + fy * (1 - fx) * at(y0 + 1, x0) + fy * fx * at(y0 + 1, x0 + 1))
    return out.float()


@pytest.mark.parametrize(("canvas", "input_size", "s"), [(16, 8, 1.5), (16, 8, 0.7), (15, 6, 1.3), (12, 8, 2.2)])
def test_the_scaled_image_is_kornias_scale_of_the_padded_canvas(canvas, input_size, s):
    prompt = vps.ScaledPrompt(canvas, input_size, (0.0,) * 3, (1.0,) * 3, init_scale=s)
    image = torch.rand(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(3))
    placed = prompt.placed(image)
    for i in range(2):
        torch.testing.assert_close(placed[i], _kornia_scale_by_hand(prompt.pad(image)[i], s), rtol=0, atol=2e-6)


def test_scale_one_is_the_padding_prompt_and_the_hole_follows_the_scaled_image():
    pad = vps.ExpansivePrompt(16, 8, MEAN, STD)
    scaled = vps.ScaledPrompt(16, 8, MEAN, STD, init_scale=1.0)
    image = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(scaled(image), pad(image), rtol=0, atol=1e-5)
    assert torch.equal(scaled.scaled_mask(), pad.mask)
    default = vps.ScaledPrompt(224, 32, MEAN, STD)
    assert float(default.scale.detach()) == vps.AUTOVP_INIT_SCALE == 1.5 and not default.theta.any()
    assert default.inner_size() == 48  # int(32 * 1.5): the hole InputPadding leaves, [88, 136) in both axes
    hole = default.scaled_mask()[0]
    assert hole[88:136, 88:136].sum() == 0 and hole.sum() == 224 * 224 - 48 * 48
    with torch.no_grad():
        default.scale.fill_(7.5)  # larger than the canvas: no frame left, as min(int(32 * 7.5), 224)
    assert default.inner_size() == 224 and default.frame().sum() == 0
    assert default.summary() == {"scale": 7.5, "inner_size": 224, "init_scale": 1.5}


def test_the_scale_is_clamped_after_every_optimizer_step_as_autovp():
    task, _ = _tiny_task("autovp-scale")
    assert (vps.AUTOVP_SCALE_RANGE) == (0.1, 5.0)
    for start, end in ((9.0, 5.0), (0.01, 0.1)):
        with torch.no_grad():
            task.prompt.scale.fill_(start)
        task.begin_epoch(0)
        task.step(torch.arange(8), 0)
        assert float(task.prompt.scale.detach()) == pytest.approx(end)


# --- the spec: names refused up front, run ids kept -----------------------------------------------------------------

def test_an_unknown_prompt_is_refused_before_any_work_listing_the_known_ones(monkeypatch):
    monkeypatch.setattr(train, "create_model", lambda *a, **kw: pytest.fail("a model was loaded"))
    with pytest.raises(UnknownNameError, match="unknown prompt 'resize'") as err:
        RunSpec("smallcnn/dense", "digits", prompt="resize")
    for known in PROMPTS:
        assert known in str(err.value)
    with pytest.raises(UnknownNameError, match="autovp-scale, pad, smm, watermark"):
        vps.create_prompt("resize", 16, 8, MEAN, STD)
    with pytest.raises(SpecError, match="only applies to visual prompting"):
        RunSpec("smallcnn/dense", "digits", method="lp", prompt="watermark")
    with pytest.raises(SpecError, match="only applies to visual prompting"):
        RunSpec("tinyclip/dense", "synth_colours", task="clip", method="vp", prompt="watermark")


def test_specs_that_leave_the_prompt_keep_their_run_ids():
    # ids computed by the code before the field existed (commit f2f72dd), for three specs using the later fields
    pinned = {RunSpec("smallcnn/dense", "digits"): "69bcd99e5c67",
              RunSpec("efficientnet_lite0/dense", "fashion_mnist", n_shots=10, seed=2, epochs=16, eval_every=16,
                      canvas=128, max_test=2000, holdout=20): "f98e58aeba7c",
              RunSpec("smallcnn/dense", "digits", method="blm", precision="bf16", sample_seed=3): "1380dc261874"}
    for spec, run_id in pinned.items():
        assert spec.prompt is None and spec.run_id == run_id
        named = spec.replace(prompt="pad")  # the default named: one run, one id
        assert named.prompt is None and named.run_id == run_id and named == spec
        others = {spec.replace(prompt=p).run_id for p in NEW}
        assert len(others) == len(NEW) and run_id not in others
    spec = RunSpec("smallcnn/dense", "digits", prompt="autovp-scale")
    assert RunSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["prompt"] == "autovp-scale"


# --- end to end on the smoke profile --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_a_tiny_smoke_run_with_each_new_prompt_ends_to_end_and_resumes_to_the_same_record(
        killed_then_resumed, name, tmp_path):
    spec = RunSpec("smallcnn/dense", "digits", method="ilm", prompt=name, n_shots=2, seed=1, epochs=2, eval_every=1,
                   max_test=100)
    whole = execute(spec, progress=False)
    assert whole["spec"]["prompt"] == name and whole["prompt"]["name"] == name
    assert 0 <= whole["metrics"]["acc"] <= 100 and math.isfinite(whole["metrics"]["ece"])
    assert whole["data"]["canvas"] == 64 and whole["data"]["input_size"] == 32
    if name == "autovp-scale":
        assert 0.1 <= whole["prompt"]["scale"] <= 5.0 and whole["prompt"]["scale"] != 1.5
    if name == "smm":  # smallcnn is a CNN: the reference's ResNet configuration
        assert whole["prompt"] == {"name": "smm", "generator_layers": 5, "patch_size": 8, "generator_lr_ratio": 1.0,
                                   "generator_gamma": 0.1, "generator_seed": 1}
    resumed, calls = killed_then_resumed(spec, 1, tmp_path / "c.pt")
    assert len(calls) == 1 and resumed["runtime"]["resumed_at_epoch"] == 1
    for key in ("metrics", "curves", "mapping", "mapping_history", "test_predictions", "prompt"):
        assert resumed[key] == whole[key], key
