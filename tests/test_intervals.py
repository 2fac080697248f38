"""Paired-gap intervals: the test set counted, verdicts only where they mean something, Stein's two stages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vpcost_utils.stats import intervals


def _noise(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal(size)
    return rng.standard_t(3, size) / math.sqrt(3.0)  # heavy tails, unit variance


@pytest.mark.parametrize("kind", ["normal", "heavy"])
def test_fixed_seed_intervals_cover_the_true_gap(kind):
    # per-seed gap = true gap + the fixed test set's shift (common to all seeds) + seed noise
    rng = np.random.default_rng(1)
    true, seed_sd, test_sd, studies = 2.0, 3.0, 1.0, 3000
    covered = 0
    for _ in range(studies):
        shift = test_sd * rng.standard_normal()
        gaps = true + shift + seed_sd * _noise(rng, kind, 5)
        g = intervals.gap_interval(gaps, test_sd ** 2)
        covered += g.low <= true <= g.high
    assert covered / studies >= 0.93


@pytest.mark.parametrize("kind", ["normal", "heavy"])
def test_stein_two_stage_intervals_are_at_most_h_wide_and_cover(kind):
    rng = np.random.default_rng(2)
    true, seed_sd, test_sd, target, n0, studies = -1.0, 4.0, 0.5, 2.0, 5, 3000
    covered, seeds = 0, []
    for _ in range(studies):
        shift = test_sd * rng.standard_normal()
        pilot = true + shift + seed_sd * _noise(rng, kind, n0)
        n = intervals.stein_seeds(pilot, target, test_sd ** 2)
        more = true + shift + seed_sd * _noise(rng, kind, n - n0)
        g = intervals.gap_interval(np.concatenate([pilot, more]), test_sd ** 2, pilot=n0)
        assert g.halfwidth <= target + 1e-9 and g.seeds == n and g.rule == "stein(n0=5)"
        covered += g.low <= true <= g.high
        seeds.append(n)
    assert covered / studies >= 0.93
    # t(0.975, 4) = 2.776, s0 ~ 4, H = 2, v = 0.25: about 4^2 / ((2 / 2.776)^2 - 0.25) = 60 seeds on average
    assert 30 < np.mean(seeds) < 120


def test_stein_refuses_a_target_the_test_set_alone_exceeds():
    t = stats.t.ppf(0.975, 2)
    assert intervals.stein_seeds([1.0, 2.0, 3.0], halfwidth=1.0, test_var=(1.0 / t) ** 2 + 1e-6) is None
    assert intervals.stein_seeds([1.0, 1.0, 1.0], halfwidth=1.0) == 3  # no seed spread: the pilot suffices
    # s0 = 1, t = 4.303, H = 1: 18.5 -> 19 seeds
    assert intervals.stein_seeds([1.0, 2.0, 3.0], halfwidth=1.0) == math.ceil(t ** 2)


def test_identical_seeds_give_no_zero_width_verdict_and_the_test_set_widens_it():
    # the new user's case: 2 seeds, both -4.3 points on a 300-image folder
    g = intervals.gap_interval([-4.3, -4.3])
    assert g.verdict.startswith("no verdict") and "2 seeds" in g.verdict
    g = intervals.gap_interval([-4.3, -4.3, -4.3])
    assert g.verdict == "no verdict (zero-width interval)"
    g = intervals.gap_interval([-4.3, -4.3, -4.3], test_var=1.5 ** 2)
    assert g.high - g.low == pytest.approx(2 * stats.t.ppf(0.975, 2) * 1.5, rel=1e-6) and g.verdict == "within +-10.8"


def test_verdicts_name_the_side_or_the_gap_ruled_out():
    assert intervals.verdict(0.5, 3.0, 3) == "above 0"
    assert intervals.verdict(-3.0, -0.1, 4) == "below 0"
    assert intervals.verdict(-1.2, 2.5, 5) == "within +-2.5"
    g = intervals.gap_interval([1.0, 2.0, 3.0, 4.0])
    assert g.mde > g.halfwidth  # 80 % power needs more than the interval's own reach


def test_test_set_variance_of_accuracy_by_hand():
    # 4 images, 2 seeds; per-image gap in points averaged over seeds: [100, 0, -50, 0]
    dense = [{"correct": np.array([1, 1, 0, 1], bool)}, {"correct": np.array([1, 0, 0, 1], bool)}]
    comp = [{"correct": np.array([0, 1, 1, 1], bool)}, {"correct": np.array([0, 0, 0, 1], bool)}]
    expected = np.var([100.0, 0.0, -50.0, 0.0], ddof=1) / 4
    assert intervals.test_set_variance(dense, comp, "acc") == pytest.approx(expected)


def test_ece_bootstrap_matches_the_metric_and_shrinks_with_more_images():
    import torch

    from vpcost_utils import metrics

    rng = np.random.default_rng(0)

    def run(n):
        logits = torch.from_numpy(rng.normal(size=(n, 10)).astype(np.float32) * 3)
        labels = torch.from_numpy(rng.integers(0, 10, n))
        return metrics.decode_predictions(metrics.encode_predictions(logits, labels)), logits, labels

    (d, logits, labels), (c, _, _) = run(400), run(400)
    exact = metrics.ece(logits.softmax(1), labels)
    assert intervals._ece(d, np.arange(400)) == pytest.approx(exact, abs=2e-3)  # float16 confidences
    small = intervals.test_set_variance([d], [c], "ece")
    (d2, _, _), (c2, _, _) = run(4000), run(4000)
    assert intervals.test_set_variance([d2], [c2], "ece") < small / 4


def test_paired_gaps_count_the_test_set_when_records_carry_outcomes():
    import torch

    from vpcost_utils import metrics

    rng = np.random.default_rng(3)
    labels = torch.from_numpy(rng.integers(0, 10, 300))
    rows, preds = [], {}
    for seed in range(3):
        for model, skill in (("x/dense", 2.0), ("x/sparse", 1.0)):
            logits = torch.from_numpy(rng.normal(size=(300, 10)).astype(np.float32))
            logits[torch.arange(300), labels] += skill
            run_id = f"{model}-{seed}"
            preds[run_id] = metrics.decode_predictions(metrics.encode_predictions(logits, labels))
            rows.append({"run_id": run_id, "model": model, "dataset": "d", "method": "ilm", "n_shots": 10,
                         "seed": seed, "acc": 100 * preds[run_id]["correct"].mean()})
    df = pd.DataFrame(rows)
    plain = intervals.paired_gaps(df, {"f": ("x/dense", ("x/sparse",))}).iloc[0]
    counted = intervals.paired_gaps(df, {"f": ("x/dense", ("x/sparse",))}, predictions=preds).iloc[0]
    assert plain["test_noise"].startswith("not counted") and counted["test_noise"] == "counted"
    assert counted["gap"] == plain["gap"] and counted["halfwidth"] > plain["halfwidth"]
    assert counted["test_se"] > 0
