"""Fixes from the fidelity audit (issue 13): zero-width UPop blocks, fp32 CLIP mapping/test passes,
no mixed precision for quantized backbones."""

from __future__ import annotations

import contextlib

import pytest
import torch

from vpcost_utils.models.clip_models import ClipModel, build_clip, config_from_state_dict


def test_a_upop_block_pruned_to_zero_width_loads_and_adds_only_its_biases():
    torch.manual_seed(0)
    cfg = {"vision_width": 32, "patch_size": 4, "resolution": 8, "embed_dim": 16, "context_length": 4,
           "vocab_size": 10, "text_width": 16, "vision_blocks": [(32, 128), (0, 0)], "text_blocks": [(16, 64)],
           "vision_layers": 2, "text_layers": 1}
    model = ClipModel(cfg).eval()
    sd = model.state_dict()
    assert sd["visual.transformer.resblocks.1.attn.in_proj_weight"].shape == (0, 32)
    assert config_from_state_dict(sd)["vision_blocks"] == [(32, 128), (0, 0)]
    rebuilt = build_clip(dict(sd)).eval()  # strict: a size mismatch would raise
    block = rebuilt.visual.transformer.resblocks[1]
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        expected = x + block.attn.out_proj.bias
        expected = expected + block.mlp.c_proj.bias
        assert torch.allclose(block(x), expected, atol=1e-6)
        assert torch.isfinite(rebuilt.encode_image(torch.randn(2, 3, 8, 8))).all()


class _AutocastRecorder:
    def __init__(self):
        self.enabled: list[bool] = []

    def __call__(self, device_type, dtype=None, enabled=True, **kwargs):
        self.enabled.append(bool(enabled))
        return contextlib.nullcontext()


def test_clip_mapping_and_test_logits_are_never_mixed_precision(monkeypatch):
    from vpcost_utils.clip import train_clip as clip_train
    from vpcost_utils.clip.images import ClipImages
    from vpcost_utils.models import SourceModel

    model = ClipModel({"vision_width": 32, "patch_size": 4, "resolution": 8, "embed_dim": 16, "context_length": 4,
                       "vocab_size": 10, "text_width": 16, "vision_blocks": [(32, 128)], "text_blocks": [(16, 64)],
                       "vision_layers": 1, "text_layers": 1}).eval()
    source = SourceModel("x/clip", model, canvas_size=8)
    head = clip_train.PromptedClip(source, torch.nn.Identity(), torch.randn(3, 16), torch.device("cpu"))
    head.autocast = True  # as on CUDA
    recorder = _AutocastRecorder()
    monkeypatch.setattr(torch, "autocast", recorder)
    pixels = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    images = ClipImages.from_tensor("x", "test", pixels, torch.zeros(5, dtype=torch.long), ["a", "b", "c"])
    logits = head.all_logits(images)
    assert recorder.enabled and not any(recorder.enabled) and logits.dtype == torch.float32
    head.logits(pixels)  # the training step may use mixed precision
    assert recorder.enabled[-1] is True


def test_quantized_backbones_train_without_mixed_precision(monkeypatch):
    from vpcost_utils.config import RunSpec
    from vpcost_utils.vp import train_vp as train

    seen: list[str] = []
    real = train._autocast

    def recording(device, precision="fp32"):
        seen.append(precision)
        return real(device, precision)

    monkeypatch.setattr(train, "_autocast", recording)
    base = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=1, eval_every=1, precision="bf16")
    dense = train.run_vp(base, progress=False)
    assert seen and set(seen) == {"bf16"} and dense["runtime"]["precision"] == "bf16"
    seen.clear()
    quantized = train.run_vp(base.replace(model="smallcnn/w4a4"), progress=False)
    assert seen and set(seen) == {"fp32"} and quantized["runtime"]["precision"] == "fp32"
    seen.clear()
    train.run_vp(base.replace(precision=None), progress=False)  # the reference's: fp32 on the CPU
    assert set(seen) == {"fp32"}


def _save_with_foreign_classes(path, monkeypatch):
    """A checkpoint as ACDC's save_checkpoint writes it: weights plus its own optimizer and scheduler objects."""
    import sys
    import types

    classes = {}
    for module, name in (("optimization.sgd", "SGD"), ("optimization.lr_schedulers", "CosineLR")):
        mod = types.ModuleType(module)
        cls = type(name, (), {"__module__": module, "__init__": lambda self: setattr(self, "lr", 0.1)})
        setattr(mod, name, cls)
        monkeypatch.setitem(sys.modules, module, mod)
        classes[name] = cls
    monkeypatch.setitem(sys.modules, "optimization", types.ModuleType("optimization"))
    weights = {"conv1.weight": torch.randn(4, 3, 3, 3)}
    torch.save({"epoch": 99, "model_state_dict": weights, "optimizer": classes["SGD"](),
                "lr_scheduler": classes["CosineLR"]()}, path)
    for module in ("optimization", "optimization.sgd", "optimization.lr_schedulers"):
        monkeypatch.delitem(sys.modules, module)  # the loading process knows none of them
    return weights


def test_acdc_checkpoints_with_pickled_training_classes_load_without_running_them(tmp_path, monkeypatch):
    from vpcost_utils.models._checkpoints import load_file

    path = tmp_path / "acdc.pth"
    weights = _save_with_foreign_classes(path, monkeypatch)
    blob = load_file(path)
    assert torch.equal(blob["model_state_dict"]["conv1.weight"], weights["conv1.weight"]) and blob["epoch"] == 99
    assert "inert optimization.sgd.SGD" in repr(blob["optimizer"])


def test_a_pickled_call_is_not_executed_and_a_corrupt_file_is_still_corrupt(tmp_path):
    import os

    import pytest

    from vpcost_utils.errors import CheckpointError
    from vpcost_utils.models._checkpoints import load_file

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="pickles a call to posix.system"):
        load_file(path)
    assert not marker.exists()
    (tmp_path / "bad.pth").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_file(tmp_path / "bad.pth")


def test_spec_defaults_are_the_papers_per_task_and_keep_vp_run_ids():
    import hashlib
    import json

    from vpcost_utils.config import RunSpec

    vp = RunSpec("smallcnn/dense", "digits")
    assert (vp.epochs, vp.max_steps) == (100, None)
    old_fields = {k: v for k, v in vp.to_dict().items() if k not in ("canvas", "max_test", "holdout", "class_names",
                                                                  "oversized", "sample_seed", "precision", "prompt")}
    legacy = json.dumps({**old_fields, "epochs": 100}, sort_keys=True, separators=(",", ":"))
    assert vp.run_id == hashlib.sha1(legacy.encode()).hexdigest()[:12]  # ids written with the old default hold
    clip = RunSpec("tinyclip/dense", "synth_colours", task="clip", method="vp")
    assert clip.epochs == 10 and clip.max_steps is None
    cross = RunSpec("smallcnn/dense", "synth_dna", task="crossmodal", method="max")
    assert (cross.epochs, cross.max_steps) == (100, 100_000)
    assert RunSpec.from_dict(cross.to_dict()) == cross
    assert RunSpec("smallcnn/dense", "synth_dna", task="crossmodal", method="max", max_steps=300).max_steps == 300


def test_oversized_cells_are_dropped_or_run_on_all_images_as_the_paper_did():
    from vpcost_utils import grids
    from vpcost_utils.config import RunSpec
    from vpcost_utils.errors import SpecError
    from vpcost_utils.nb.notebook import drop_oversized_shots
    from vpcost_utils.vp.train_vp import load_data

    ours = RunSpec("smallcnn/dense", "digits", n_shots=25, epochs=1)  # digits: at most 21 per class
    paper = ours.replace(oversized="paper")
    assert paper.run_id != ours.run_id and ours.replace(n_shots=None, oversized="paper") == ours.replace(n_shots=None)
    with pytest.raises(SpecError, match="no class of digits"):
        load_data(ours)
    train, _ = load_data(paper)
    assert len(train) == len(load_data(ours.replace(n_shots=None))[0])  # every training image
    assert paper.effective_batch_size == 32  # N=25's batch size, not the full-data 128
    assert drop_oversized_shots([ours, paper]) == [paper]
    with pytest.raises(SpecError, match="only applies to task='vp'"):
        RunSpec("tinyclip/dense", "synth_colours", task="clip", method="vp", n_shots=5, oversized="paper")
    specs = grids.section_runs("sparse_transfer", "paper")
    assert {s.oversized for s in specs if s.n_shots is not None} == {"paper"}
    assert {s.oversized for s in specs if s.n_shots is None} == {None}
    smoke = grids.section_runs("sparse_transfer", "smoke")
    assert {s.oversized for s in smoke} == {None}
