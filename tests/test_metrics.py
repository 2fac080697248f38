import math

import pytest
import torch
import torch.nn.functional as F

from vpcost_utils import metrics


def _hand_ece(probs, targets, n_bins):
    conf, pred = probs.max(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [(c > lo or (b == 0 and c == 0)) and c <= hi for c in conf.tolist()]
        idx = torch.tensor(inside)
        if idx.any():
            acc = (pred[idx] == targets[idx]).double().mean()
            total += idx.double().mean() * abs(float(acc) - float(conf[idx].double().mean()))
    return float(total)


def test_ece_uses_right_inclusive_bins():
    # 4 bins with exact binary edges: 0.5 belongs to (0.25, 0.5], not (0.5, 0.75].
    probs = torch.tensor([[0.5, 0.5], [0.45, 0.55], [0.9, 0.1]], dtype=torch.float64)
    targets = torch.tensor([1, 1, 0])  # 0.5 -> predicts class 0 (first max): wrong
    # bin (0.25, 0.5]: conf 0.5, acc 0 ; bin (0.5, 0.75]: conf 0.55, acc 1 ; bin (0.75, 1]: conf 0.9, acc 1
    expected = (0.5 + 0.45 + 0.1) / 3
    assert metrics.ece(probs, targets, n_bins=4) == pytest.approx(expected)


def test_ece_pools_samples_within_a_bin():
    probs = torch.tensor([[0.7, 0.3], [0.65, 0.35]], dtype=torch.float64)
    targets = torch.tensor([0, 1])  # same bin for n_bins=4: acc 0.5, conf 0.675
    assert metrics.ece(probs, targets, n_bins=4) == pytest.approx(0.175)


def test_ece_matches_hand_computation_and_torchmetrics_on_unsaturated_inputs():
    torchmetrics = pytest.importorskip("torchmetrics")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=g) * 2
    targets = torch.randint(0, 7, (500,), generator=g)
    probs = logits.softmax(1)
    assert probs.max() < 1.0
    ours = metrics.ece(probs, targets, n_bins=15)
    assert ours == pytest.approx(_hand_ece(probs.double(), targets, 15), abs=1e-9)
    ref = torchmetrics.classification.MulticlassCalibrationError(num_classes=7, n_bins=15, norm="l1")
    assert ours == pytest.approx(float(ref(probs, targets)), abs=1e-5)


def test_saturated_confidence_goes_to_the_last_bin():
    probs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.96, 0.04]], dtype=torch.float64)
    targets = torch.tensor([0, 1, 1, 0])
    # all four share the last bin (14/15, 1]: acc 0.75, mean conf 0.99
    assert metrics.ece(probs, targets) == pytest.approx(0.24)


def test_paper_logit_ece_is_per_batch_on_logits_divided_by_n():
    logits = torch.tensor([[3.0, 1.0], [2.0, 0.5], [0.2, 0.1], [0.0, 4.0]])
    targets = torch.tensor([0, 1, 0, 1])
    per_batch = [metrics.ece(logits[:2], targets[:2]), metrics.ece(logits[2:], targets[2:])]
    assert metrics.paper_logit_ece(logits, targets, batch_size=2) == pytest.approx(sum(per_batch) / 4)
    # raw logits above 1 land in the last bin: batch 1 = |mean(3, 2) - 0.5| = 2.0
    assert per_batch[0] == pytest.approx(2.0)


def test_kl_statistics_match_their_definitions():
    p = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    u = torch.full((3,), 1 / 3)
    paper = metrics.kl_uniform_paper(p)
    assert paper[0] == pytest.approx(float(F.kl_div(p[0].log(), u, reduction="mean")))
    assert paper[0] == pytest.approx(sum(1 / 3 * (math.log(1 / 3) - math.log(x)) for x in (0.5, 0.25, 0.25)) / 3)
    proper = metrics.kl_p_uniform(p)
    assert proper[0] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.25) + math.log(3))
    assert paper[1] == pytest.approx(0, abs=1e-7) and proper[1] == pytest.approx(0, abs=1e-7)


def test_summarize_confidence_and_per_class():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
    targets = torch.tensor([0, 1, 1, 1])
    s = metrics.summarize(logits, targets)
    p = logits.softmax(1)
    assert s["acc"] == pytest.approx(50.0)
    assert s["conf_correct"] == pytest.approx(float((p[0, 0] + p[1, 1]) / 2))
    assert s["per_class_acc"] == pytest.approx([100.0, 100 / 3])
    assert s["kl_wrong_paper"] == pytest.approx(float(metrics.kl_uniform_paper(p[2:]).mean()))
    assert sum(s["reliability"]["count"]) == 4
