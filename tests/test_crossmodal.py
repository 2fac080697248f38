"""Cross-modal reprogramming: patch layout, padding / truncation, noise-image labels, training on generated data."""

from __future__ import annotations

import pytest
import torch

from vpcost_utils.config import RunSpec
from vpcost_utils.crossmodal import (
    TokenReprogrammer,
    assign_labels,
    canvas_penalty,
    labels_per_class,
    mapped_logits,
    noise_order,
)
from vpcost_utils.errors import SpecError


def _constant_patch_reprogrammer(vocab: int, canvas: int, patch: int, mean=(0.5,) * 3, std=(0.5,) * 3):
    """Token t's patch is filled with atanh(t / 10) so that the tanh canvas shows t / 10 everywhere in it."""
    rp = TokenReprogrammer(vocab, canvas, patch, mean, std)
    with torch.no_grad():
        values = torch.atanh(torch.arange(vocab, dtype=torch.float32) / 10)
        rp.embedding.weight.copy_(values[:, None].expand(vocab, 3 * patch * patch))
    return rp


def _patch_grid(canvas: torch.Tensor, patch: int) -> torch.Tensor:
    """Token value of each patch (top-left pixel, channel 0) as a [rows, cols] grid."""
    return torch.round(canvas[0, 0, ::patch, ::patch] * 10).long()


def test_known_sequence_becomes_known_raster_grid_with_last_token_repeated():
    rp = _constant_patch_reprogrammer(vocab=10, canvas=12, patch=4)  # 3 x 3 patches
    _, canvas = rp(torch.tensor([[1, 2, 3, 4, 5]]))
    expected = torch.tensor([[1, 2, 3], [4, 5, 5], [5, 5, 5]])
    assert torch.equal(_patch_grid(canvas, 4), expected)
    # every pixel of a patch carries that patch's token
    assert torch.allclose(canvas[0, :, 4:8, 0:4], torch.full((3, 4, 4), 0.4))


def test_overflow_tokens_are_dropped():
    rp = _constant_patch_reprogrammer(vocab=10, canvas=8, patch=4)  # 2 x 2 patches
    _, canvas = rp(torch.tensor([[9, 8, 7, 6, 1, 2, 3]]))
    assert torch.equal(_patch_grid(canvas, 4), torch.tensor([[9, 8], [7, 6]]))


def test_canvas_not_multiple_of_patch_leaves_zero_strip():
    rp = _constant_patch_reprogrammer(vocab=10, canvas=10, patch=4)  # 2 x 2 patches + 2-px strip
    _, canvas = rp(torch.tensor([[3, 3, 3, 3]]))
    assert canvas.shape == (1, 3, 10, 10)
    assert torch.all(canvas[..., 8:] == 0) and torch.all(canvas[..., 8:, :] == 0)
    assert torch.allclose(canvas[..., :8, :8], torch.full((1, 3, 8, 8), 0.3))


def test_unnormalise_clamp_renormalise():
    # mean 0.5, std 1: tanh value 0.9 un-normalises to 1.4, is clamped to 1 and re-normalises to 0.5
    rp = _constant_patch_reprogrammer(vocab=10, canvas=4, patch=4, mean=(0.5,) * 3, std=(1.0,) * 3)
    image, canvas = rp(torch.tensor([[9]]))
    assert torch.allclose(canvas, torch.full((1, 3, 4, 4), 0.9))
    assert torch.allclose(image, torch.full((1, 3, 4, 4), 0.5))
    image, _ = rp(torch.tensor([[3]]))  # 0.8 is inside [0, 1]: unchanged
    assert torch.allclose(image, torch.full((1, 3, 4, 4), 0.3))
    # ImageNet statistics: every tanh value un-normalises inside [0, 1], so the backbone sees the canvas itself
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rp = _constant_patch_reprogrammer(vocab=10, canvas=4, patch=4, mean=mean, std=std)
    image, canvas = rp(torch.tensor([[9]]))
    assert torch.allclose(image, canvas, atol=1e-6)


def test_canvas_smaller_than_patch_is_rejected():
    with pytest.raises(SpecError, match="smaller than one 16-px patch"):
        TokenReprogrammer(10, 8, 16, (0.5,) * 3, (0.5,) * 3)


def test_canvas_penalty_is_scaled_l2_norm_over_batch():
    canvas = torch.full((2, 3, 2, 2), 0.5)
    assert canvas_penalty(canvas).item() == pytest.approx(1e-4 * (24 * 0.25) ** 0.5 / 2)


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.seen = None

    def forward(self, x):
        self.seen = x
        return self.logits[None].expand(len(x), -1)


def test_noise_order_is_ascending_and_uses_seeded_uniform_noise():
    logits = torch.tensor([5.0, -1.0, 3.0, 0.0, 9.0, -7.0])
    model = _FixedLogits(logits)
    order = noise_order(model, canvas=4, seed=42)
    assert order.tolist() == [5, 1, 3, 2, 0, 4]
    expected_noise = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(42)) * 2 - 1
    assert torch.equal(model.seen, expected_noise)


def test_round_robin_assignment_and_reductions():
    order = torch.tensor([50, 40, 30, 20, 10, 0, 60, 70])
    table = assign_labels(order, num_targets=3, per_class=2)
    assert table.tolist() == [[50, 20], [40, 10], [30, 0]]  # class c gets positions c, c + 3
    source = torch.zeros(1, 80)
    source[0, 50], source[0, 20], source[0, 40], source[0, 10] = 4.0, 2.0, -1.0, 1.0
    assert mapped_logits(source, table, "max").tolist() == [[4.0, 1.0, 0.0]]
    assert mapped_logits(source, table, "mean").tolist() == [[3.0, 0.0, 0.0]]
    with pytest.raises(SpecError):
        mapped_logits(source, table, "median")


def test_labels_per_class_shrinks_for_small_sources():
    assert labels_per_class(1000, 14) == 10
    assert labels_per_class(100, 14) == 7
    with pytest.raises(SpecError):
        labels_per_class(3, 4)


def _random_cnn() -> torch.nn.Module:
    """A frozen random CNN shaped like the smoke source model: 64-px input, 100 classes, logits of order 1."""
    torch.manual_seed(0)
    layers, cin = [], 3
    for cout in (16, 32, 64, 64):
        layers += [torch.nn.Conv2d(cin, cout, 3, stride=2, padding=1), torch.nn.ReLU()]
        cin = cout
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(cin, 100))
    with torch.no_grad():
        out = net(torch.randn(64, 3, 64, 64))
        net[-1].weight.div_(out.std())  # unit-scale logits, like a trained network's rather than a random head's
    return net


def _register_random_backbone() -> str:
    """Registered as a model so the run goes through ``create_model`` like any real backbone."""
    from vpcost_utils.models import ModelEntry, SourceModel, list_models, register

    name = "testcnn/random"
    if name not in list_models():
        register(ModelEntry(name, arch="testcnn", compression="dense", method="dense",
                            loader=lambda e: SourceModel(e.name, _random_cnn(), canvas_size=64, num_classes=100,
                                                         provenance={"name": e.name})))
    return name


@pytest.mark.parametrize("dataset", ["synth_text4", "synth_dna"])
def test_reprogramming_learns_generated_task(tmp_path, monkeypatch, dataset):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.crossmodal import run_crossmodal

    spec = RunSpec(model=_register_random_backbone(), dataset=dataset, task="crossmodal", method="max", epochs=3,
                   batch_size=16, lr=5e-2, max_steps=80)
    record = run_crossmodal(spec, progress=False)
    chance = 100 / len(record["classes"])
    assert record["metrics"]["acc"] > chance + 15, record["metrics"]["acc"]
    assert record["data"]["canvas"] == 64 and record["data"]["patch"] == 8
    assert len(record["mapping"]) == len(record["classes"])


def test_paper_selection_schedule_matches_the_reference_counter():
    from vpcost_utils.crossmodal.train_crossmodal import VALIDATE_EVERY, VALIDATION_BATCHES, PaperSelection

    assert (VALIDATE_EVERY, VALIDATION_BATCHES) == (500, 102)  # 102 batches of 4: 408 examples
    selection = PaperSelection.__new__(PaperSelection)
    assert [s for s in range(1, 1600) if selection.due(s)] == [1, 501, 1001, 1501]


def test_paper_number_is_the_full_test_accuracy_of_the_quick_validation_pick(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.crossmodal import run_crossmodal
    from vpcost_utils.crossmodal import train_crossmodal as cm_train

    monkeypatch.setattr(cm_train, "VALIDATE_EVERY", 10)
    monkeypatch.setattr(cm_train, "VALIDATION_BATCHES", 3)
    spec = RunSpec(model=_register_random_backbone(), dataset="synth_text4", task="crossmodal", method="max",
                   epochs=3, batch_size=16, lr=5e-2, max_steps=60)
    record = run_crossmodal(spec, progress=False)
    m, curves = record["metrics"], record["curves"]
    assert curves["quick_val_step"] == [1, 11, 21, 31, 41, 51]
    best = max(curves["quick_val_acc"])
    later_ties = [s for s, a in zip(curves["quick_val_step"], curves["quick_val_acc"], strict=True) if a == best]
    assert m["paper_best_step"] == later_ties[-1] and m["paper_quick_val_acc"] == best
    assert record["data"]["paper_selection"]["examples"] == 48
    # the same run stopped at the picked step ends with the same prompt: its last-step accuracy is the paper number
    again = run_crossmodal(spec.replace(max_steps=m["paper_best_step"]), progress=False)
    assert again["metrics"]["acc"] == pytest.approx(m["acc_paper_best_ckpt"])
