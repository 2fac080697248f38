"""The mini profile's grid, the spec fields it added (canvas, max_test) and the process-pool runner."""

import hashlib
import json
import os

import pytest
import torch

from vpcost_utils import grids, profiles
from vpcost_utils.config import RunSpec
from vpcost_utils.data.base import ImageSplit
from vpcost_utils.nb.artifacts import NOT_MADE, missing_files, write_index
from vpcost_utils.nb.notebook import has_shots
from vpcost_utils.running import sweep
from vpcost_utils.running.store import ResultStore
from vpcost_utils.vp.train_vp import fixed_test_subset, run_vp


def test_specs_without_the_later_fields_keep_their_old_run_ids():
    spec = RunSpec("smallcnn/dense", "digits", n_shots=10)
    later = ("canvas", "max_test", "holdout", "class_names", "oversized", "sample_seed", "precision", "prompt")
    old_fields = {k: v for k, v in spec.to_dict().items() if k not in later}
    old_id = hashlib.sha1(json.dumps(old_fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert spec.run_id == old_id
    assert spec.replace(canvas=128).run_id != old_id and spec.replace(max_test=100).run_id != old_id
    assert spec.replace(holdout=10).run_id != old_id
    assert RunSpec.from_dict(spec.replace(canvas=128).to_dict()) == spec.replace(canvas=128)


def test_test_subset_is_stratified_fixed_and_sorted():
    labels = torch.arange(10).repeat_interleave(100)
    split = ImageSplit("x", "test", torch.zeros(1000, 3, 2, 2, dtype=torch.uint8), labels, [str(i) for i in range(10)])
    a, b = fixed_test_subset(split, 200), fixed_test_subset(split, 200)
    assert len(a) == 200 and torch.equal(a.labels, b.labels)
    assert torch.bincount(a.labels).tolist() == [20] * 10
    assert fixed_test_subset(split, None) is split and fixed_test_subset(split, 5000) is split


def test_a_spec_canvas_replaces_the_models_canvas():
    spec = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=1, eval_every=1, canvas=48, max_test=100)
    record = run_vp(spec, progress=False)
    assert record["data"]["canvas"] == 48 and record["data"]["n_test"] == 100


def test_mini_grid_is_real_multi_seed_and_shares_runs_between_sections():
    specs = {s: grids.section_runs(s, "mini") for s in profiles.SECTIONS}
    vp = [spec for s in ("sparse_transfer", "quantization", "calibration", "label_mapping") for spec in specs[s]]
    assert {spec.canvas for spec in vp} == {128} and {spec.max_test for spec in vp} == {2000}
    assert {spec.dataset for spec in vp} == {"mnist", "fashion_mnist"}
    assert all(spec.model.startswith("efficientnet_lite0/") for spec in vp)
    shots = {spec.n_shots for spec in specs["sparse_transfer"]}
    assert min(shots) == 1 and max(shots) >= 50
    assert {spec.seed for spec in specs["sparse_transfer"]} == {0, 1, 2}
    # calibration is measured on the sparse-transfer runs at the largest budget, not on new ones
    transfer_ids = {spec.run_id for s in ("sparse_transfer", "quantization") for spec in specs[s]}
    assert {spec.run_id for spec in specs["calibration"]} <= transfer_ids
    assert {spec.canvas for spec in specs["cross_modal"]} == {128}


def test_has_shots_selects_budgets_and_full_data():
    import pandas as pd

    df = pd.DataFrame({"n_shots": [1, 50, None]})
    assert has_shots(df, (50,)).tolist() == [False, True, False]
    assert has_shots(df, (None,)).tolist() == [False, False, True]


def test_artifacts_a_profile_cannot_make_are_not_missing(tmp_path):
    out = tmp_path / "mini"
    out.mkdir()
    not_made = NOT_MADE["mini"]
    assert not any("fig03" in pattern for pattern in missing_files(out))
    assert any("fig02" in pattern for pattern in missing_files(out))
    index = write_index(out).read_text()
    assert index.count("not made by this profile") == len(not_made)


def test_the_process_pool_runner_writes_the_same_records_as_serial(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_WORKERS", "2")
    specs = sweep.grid(model="smallcnn/dense", dataset="digits", n_shots=2, epochs=2, eval_every=2, seed=[0, 1])
    pooled, serial = ResultStore(tmp_path / "pool"), ResultStore(tmp_path / "serial")
    result = sweep.run_grid(specs, pooled, runner="processes", progress=False)
    assert (result.ran, result.failures) == (2, [])
    sweep.run_grid(specs, serial, progress=False)
    for spec in specs:
        a, b = pooled.read(spec.run_id), serial.read(spec.run_id)
        assert a["mapping"] == b["mapping"] and abs(a["metrics"]["acc"] - b["metrics"]["acc"]) < 1e-6
        assert a["env"]["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert sweep.run_grid(specs, pooled, runner="processes", progress=False).ran == 0  # resumable as serial


def test_paired_gap_interval_by_hand():
    import math

    import pandas as pd

    from vpcost_utils.stats.intervals import paired_gaps, t_interval

    # dense beats "sparse" by 3, 4, 5 points on seeds 0-2 (mean 4, sd 1, t(0.975, 2) = 4.3027: beyond noise)
    # and "noisy" by 2, 4, 6 (sd 2: the interval reaches below 0)
    rows = [{"model": m, "dataset": "d", "method": "ilm", "n_shots": 10, "seed": s, "acc": a}
            for s, (dense, sparse, noisy) in enumerate([(50, 47, 48), (60, 56, 56), (55, 50, 49)])
            for m, a in (("x/dense", dense), ("x/sparse", sparse), ("x/noisy", noisy))]
    unpaired = {"model": "x/sparse", "dataset": "d", "method": "ilm", "n_shots": 10, "seed": 9, "acc": 0.0}
    rows.append(unpaired)
    gaps = paired_gaps(pd.DataFrame(rows), {"f": ("x/dense", ("x/sparse", "x/noisy"))})
    row, noisy = gaps.iloc[0], gaps.iloc[1]
    half = 4.302653 * 1 / math.sqrt(3)
    assert row["pairs"] == 3 and row["gap"] == 4.0 and row["shots"] == "10"
    assert math.isclose(row["gap_low"], 4 - half, rel_tol=1e-5)
    assert math.isclose(row["gap_high"], 4 + half, rel_tol=1e-5)
    assert bool(row["beyond_noise"]) and not bool(noisy["beyond_noise"]) and noisy["gap"] == 4.0
    assert math.isnan(t_interval([1.0])[1]) and t_interval([1.0])[0] == 1.0


def test_a_one_epoch_run_trains_at_the_full_learning_rate():
    # int(0.5 * 1) = int(0.72 * 1) = 0: the reference's milestones would divide the rate by 100 before step one
    record = run_vp(RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=1, eval_every=1), progress=False)
    assert record["curves"]["lr"] == [0.01]
    record = run_vp(RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=4, eval_every=4), progress=False)
    # E=4: both drops fall on epoch 2, as in the reference
    assert record["curves"]["lr"] == pytest.approx([0.01, 0.01, 0.0001, 0.0001])
