"""Recovered compressed models (built/distill.py, efficientnet_lite_recovered.py) on a tiny network.

The real Lite0 builds take 20-35 minutes each; these tests run the same build on a four-layer CNN and the
real photographs at 32 px, and check what must hold for any network: exact sparsity and bit widths, the
held-out photographs never in calibration, a changed recipe rebuilding, an interrupted build leaving
nothing loadable and resuming to the uninterrupted result.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from vpcost_utils.arithmetic import arithmetic_key
from vpcost_utils.built import distill as recovery
from vpcost_utils.built import efficientnet_lite_recovered as rec
from vpcost_utils.built import natural_images as photos
from vpcost_utils.errors import SpecError
from vpcost_utils.models.quantize import count_distinct_weights, quantized_bits

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10)).eval()


def layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and n != "0"]


def tiny(kind: str = "sparse", **kw) -> recovery.Recipe:
    base = dict(steps=12, batch_size=8, pool=32, size=32, prune_every=2, lr=1e-3)
    if kind == "sparse":
        return recovery.Recipe("sparse", sparsity=kw.pop("sparsity", 0.5), **{**base, **kw})
    return recovery.Recipe("quant", weight_bits=kw.pop("weight_bits", 4), act_bits=kw.pop("act_bits", 8),
                           **{**base, **kw})


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path / "home"))
    return tmp_path


def test_unsupported_recipes_are_refused_before_any_work():
    with pytest.raises(SpecError, match=r"sparsity 0.6 is not supported.*0.5, 0.7, 0.9"):
        recovery.Recipe("sparse", sparsity=0.6)
    with pytest.raises(SpecError, match="W5A8 are not supported.*W4A8"):
        recovery.Recipe("quant", weight_bits=5, act_bits=8)
    with pytest.raises(SpecError, match="unknown recovery kind"):
        recovery.Recipe("distil")


def test_recipe_key_names_every_field():
    base = recovery.Recipe("sparse", sparsity=0.5)
    assert base.key() == recovery.Recipe("sparse", sparsity=0.5).key()
    for field, value in (("steps", 801), ("lr", 2e-4), ("temperature", 4.0), ("seed", 1), ("sparsity", 0.7)):
        assert dataclasses.replace(base, **{field: value}).key() != base.key(), field


def test_sparsity_schedule_rises_cubically_to_the_target_then_stays():
    r = recovery.Recipe("sparse", sparsity=0.7, steps=100, ramp=0.5, start_sparsity=0.3)
    values = [recovery.sparsity_at(r, s) for s in range(101)]
    assert values[0] == pytest.approx(0.3) and values[50] == pytest.approx(0.7) and values[100] == pytest.approx(0.7)
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert values[10] - values[0] > values[50] - values[40]  # cubic: fast first, slow at the end


@pytest.mark.parametrize("target", [0.5, 0.7])
def test_sparse_build_is_exactly_sparse_with_a_fixed_mask(target, tmp_path):
    student, info = recovery.build(tiny(sparsity=target), tiny_net(), MEAN, STD, layers, tmp_path / "p.pt",
                                   progress=False)
    weights = [m.weight for _, m in layers(student)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(target * total) and info["measured_sparsity"] == zeros / total
    assert int((student[0].weight == 0).sum()) == 0  # the stem is not pruned
    assert not any(p.requires_grad for p in student.parameters()) and not student.training
    assert not (tmp_path / "p.pt").exists()


def test_quant_build_has_the_recipes_bit_widths(tmp_path):
    student, _ = recovery.build(tiny("quant", weight_bits=4, act_bits=8), tiny_net(), MEAN, STD, layers,
                                tmp_path / "p.pt", progress=False)
    bits = quantized_bits(student)
    assert bits == {"0": 8, "3": 4, "6": 4, "10": 8}  # first and last layer in execution order at 8 bits
    assert student[3].input_quant.bits == 8 and student[0].input_quant.bits == 8
    distinct = count_distinct_weights(student)
    for name in ("3", "6"):  # per-channel 4-bit steps: at most 16 values in each output channel
        w = student[int(name)].quantized_weight()
        assert all(torch.unique(row).numel() <= 16 for row in w.reshape(w.shape[0], -1))
        assert distinct[name] > 16  # ... but channels have their own steps
    w4a4, _ = recovery.build(tiny("quant", act_bits=4), tiny_net(), MEAN, STD, layers, tmp_path / "q.pt",
                             progress=False)
    assert w4a4[3].input_quant.bits == 4 and w4a4[0].input_quant.bits == 8


def test_held_out_photographs_never_enter_calibration(monkeypatch):
    # Calibration photographs black, held-out ones white: any held-out pixel in a crop would show.
    fake = tuple(sorted({**{n: torch.zeros(3, 60, 80, dtype=torch.uint8) for n in ("china", "flower", "astronaut")},
                         **{n: torch.full((3, 60, 80), 255, dtype=torch.uint8) for n in photos.HELD_OUT}}.items()))
    monkeypatch.setattr(photos, "_decoded", lambda: fake)
    assert sorted(photos.photographs("held_out")) == sorted(photos.HELD_OUT)
    assert set(photos.photographs("calibration")).isdisjoint(photos.HELD_OUT)
    assert int(photos.calibration_crops(64, 16, seed=0).max()) == 0
    assert int(photos.distillation_crops(64, 16, seed=0).max()) == 0
    assert int(photos.calibration_crops(8, 16, seed=0, role="held_out").min()) == 255
    with pytest.raises(ValueError, match="unknown photograph role"):
        photos.photographs("test")


def test_agreement_uses_only_the_held_out_photographs(monkeypatch):
    from vpcost_utils.built import agreement

    seen = []
    real = photos.calibration_crops
    monkeypatch.setattr(agreement, "calibration_crops", lambda *a, **k: seen.append(k.get("role")) or real(*a, **k))
    net = tiny_net()
    out = agreement.upstream_agreement(net, net, MEAN, STD)
    assert seen == ["held_out", "held_out"] and out["agreement_224"] == 100.0 and out["kl_128"] == 0.0
    assert out["labelled_same"] == len(photos.photographs("held_out"))


def test_interrupted_build_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    recipe = tiny(steps=10)
    whole, _ = recovery.build(recipe, tiny_net(), MEAN, STD, layers, tmp_path / "a.pt", progress=False)
    calls = {"n": 0}
    real = recovery.distillation_loss

    def interrupt_at_seven(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(recovery, "distillation_loss", interrupt_at_seven)
    partial = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        recovery.build(recipe, tiny_net(), MEAN, STD, layers, partial, checkpoint_seconds=0, progress=False)
    assert torch.load(partial, weights_only=False)["step"] == 6
    monkeypatch.setattr(recovery, "distillation_loss", real)
    resumed, info = recovery.build(recipe, tiny_net(), MEAN, STD, layers, partial, progress=False)
    assert info["steps"] == 10 and not partial.exists()
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_truncated_or_foreign_partial_builds_start_again(tmp_path, capsys):
    recipe = tiny(steps=4)
    partial = tmp_path / "p.pt"
    partial.write_bytes(b"\x80\x02truncated")
    whole, _ = recovery.build(recipe, tiny_net(), MEAN, STD, layers, tmp_path / "ref.pt", progress=False)
    again, info = recovery.build(recipe, tiny_net(), MEAN, STD, layers, partial, progress=False)
    assert "unreadable partial build" in capsys.readouterr().out and info["steps"] == 4
    assert partial.with_suffix(".refused").exists()
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), again.state_dict().values(), strict=True))
    torch.save({"key": "another"}, partial)
    recovery.build(recipe, tiny_net(), MEAN, STD, layers, partial, progress=False)
    assert "of another recipe" in capsys.readouterr().out


class _Dense:
    """What build_recovered needs of the dense SourceModel."""

    def __init__(self):
        self.module, self.mean, self.std, self.class_names = tiny_net(), MEAN, STD, None


def _patch_registry(monkeypatch):
    monkeypatch.setattr(rec, "create_model", lambda name: _Dense())
    monkeypatch.setattr(rec, "upstream_agreement", lambda *a, **k: {"agreement_224": 50.0})
    monkeypatch.setattr(rec, "pruned_layers", layers)


def test_an_interrupted_model_build_leaves_nothing_loadable(monkeypatch):
    _patch_registry(monkeypatch)
    recipe = tiny()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rec, "build", broken)
    with pytest.raises(KeyboardInterrupt):
        rec.build_recovered("prune-50-recovered", recipe, progress=False)
    assert not rec.model_path("prune-50-recovered", recipe).exists()


def test_a_changed_recipe_rebuilds_with_a_message(monkeypatch, capsys):
    _patch_registry(monkeypatch)
    old, new = tiny(steps=4), tiny(steps=6)
    first, info = rec.build_recovered("prune-50-recovered", old, progress=False)
    assert info["steps"] == 4 and info["agreement"] == {"agreement_224": 50.0}
    again, _ = rec.build_recovered("prune-50-recovered", old, progress=False)  # cached: loaded, not rebuilt
    assert "rebuilding" not in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True))
    _, info = rec.build_recovered("prune-50-recovered", new, progress=False)
    out = capsys.readouterr().out
    assert "the recipe, the thread count or the CPU's kernel set changed" in out and info["steps"] == 6
    assert rec.model_path("prune-50-recovered", new).exists()
    assert not rec.model_path("prune-50-recovered", old).exists()


def test_registered_names_say_what_they_are():
    from vpcost_utils.models import get_entry

    for tag, recipe in rec.RECIPES.items():
        entry = get_entry(f"efficientnet_lite0/{tag}")
        if recipe.kind == "sparse":
            how = {"gmp": ("recovered", "gmp-distill"), "reconstruct": ("reconstructed", "obs-distill")}[recipe.prune]
            suffix = "wallpapers" if recipe.photos else how[0]  # the larger calibration set's models say so
            assert entry.sparsity == recipe.sparsity and tag == f"prune-{round(100 * recipe.sparsity)}-{suffix}"
            assert entry.method == how[1]
        else:
            assert entry.bits == recipe.weight_bits and tag == f"w{recipe.weight_bits}a{recipe.act_bits}-recovered"


def test_a_build_trains_on_the_runs_thread_count_and_another_count_is_another_model(monkeypatch, capsys):
    _patch_registry(monkeypatch)
    seen = []
    real = rec.build

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(rec, "build", spy)
    recipe, before = tiny(steps=3), torch.get_num_threads()
    monkeypatch.setenv("VPCOST_RUN_THREADS", "2")
    _, info = rec.build_recovered("prune-50-recovered", recipe, progress=False)
    assert seen == [2] and info["build_threads"] == 2 and torch.get_num_threads() == before
    assert rec.model_path("prune-50-recovered", recipe).name.endswith(f"-t2-{arithmetic_key()}.pt")
    monkeypatch.setenv("VPCOST_RUN_THREADS", "1")
    _, info = rec.build_recovered("prune-50-recovered", recipe, progress=False)  # not the 2-thread file
    assert seen == [2, 1] and info["build_threads"] == 1
    assert "the thread count or the CPU's kernel set changed" in capsys.readouterr().out
    assert not rec.model_path("prune-50-recovered", recipe, threads=2).exists()
