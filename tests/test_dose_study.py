"""The dose-response study's analysis: the slope recovers a known dose-response, the controls gate the verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vpcost_utils.studies import dose_study as ds


def _runs(slope_per_10: float, noise: float = 0.3, seeds: int = 5) -> pd.DataFrame:
    """Per-seed accuracies whose dense-minus-model gap is ``slope_per_10`` points per 10 points of function lost."""
    rng = np.random.default_rng(1)
    levels = ds._levels().set_index("model")
    rows = []
    for shots in ds.DESIGN["seeds"]:
        for seed in range(seeds):
            base = 70 + rng.normal(0, 1)
            for model, level in levels.iterrows():
                lost = 0.0 if np.isnan(level["function_lost"]) else level["function_lost"]
                acc = base if model in (ds.DENSE, ds.NULL) else base - slope_per_10 * lost / 10 + rng.normal(0, noise)
                rows.append({"model": model, "n_shots": shots, "seed": seed, "acc": acc, "ece": 0.05})
    return pd.DataFrame(rows)


def test_the_slope_recovers_a_known_dose_response_and_its_interval_covers_it():
    table = ds.slopes(_runs(0.5))
    acc = table[(table["metric"] == "acc") & (table["axis"] == "function_lost")]
    assert len(acc) == len(ds.DESIGN["seeds"])
    assert (acc["low"] <= 0.5).all() and (acc["high"] >= 0.5).all() and (acc["verdict"] == "above 0").all()
    assert ((acc["slope_per_10"] - 0.5).abs() < 0.1).all()
    # the null is left out of the slope; models without a measured agreement too
    assert (acc["models"] == sum(1 for m, v in ds.DESIGN["models"].items()
                                 if m != ds.NULL and v["agreement"] is not None)).all()


def test_no_dose_response_gives_an_interval_that_covers_zero():
    flat = ds.slopes(_runs(0.0, noise=0.5))
    acc = flat[(flat["metric"] == "acc") & (flat["axis"] == "function_lost")]
    assert (acc["verdict"] == "covers 0").all()


def test_controls_say_whether_the_null_held_and_the_positive_control_was_seen():
    gaps = pd.DataFrame([
        {"metric": "acc", "shots": "10", "model": ds.NULL, "gap": 0.0, "gap_low": 0.0, "gap_high": 0.0},
        {"metric": "acc", "shots": "10", "model": ds.POSITIVE, "gap": 4.0, "gap_low": 2.0, "gap_high": 6.0},
        {"metric": "acc", "shots": "1", "model": ds.NULL, "gap": 0.5, "gap_low": 0.1, "gap_high": 0.9},
        {"metric": "acc", "shots": "1", "model": ds.POSITIVE, "gap": 1.0, "gap_low": -2.0, "gap_high": 4.0},
    ])
    ctrl = ds.controls(gaps).set_index("shots")
    assert ctrl.loc["10", "null_covers_0"] and ctrl.loc["10", "positive_detected"]
    assert not ctrl.loc["1", "null_covers_0"] and not ctrl.loc["1", "positive_detected"]


def test_the_design_pairs_every_model_with_dense_on_the_same_seeds_and_images():
    specs = ds.specs(stage=1)
    by_model = {}
    for s in specs:
        by_model.setdefault(s.model, set()).add((s.n_shots, s.seed, s.max_test, s.holdout, s.epochs, s.canvas))
    dense = by_model.pop(ds.DENSE)
    assert all(cells == dense for cells in by_model.values())
    assert all(s.method == "lp" and s.epochs == 100 for s in specs)
    assert len(specs) == (1 + len(ds.DESIGN["models"])) * sum(ds.DESIGN["seeds"].values())
    large = ds.specs(stage=2)
    assert {s.data_seed for s in large} == {ds.LARGE["sample_seed"]}  # one N-shot sample: seeds vary the head
    assert {s.seed for s in large} == set(range(ds.LARGE["seeds"])) and {s.n_shots for s in large} == {500}


def test_stage_3_draws_one_large_sample_and_its_null_shares_dense_s_features():
    largest = ds.specs(stage=3)
    assert {s.n_shots for s in largest} == {ds.LARGEST["shots"]} and {s.data_seed for s in largest} == {0}
    assert {s.model for s in largest} == set(ds.LARGEST["models"]) and ds.NULL in ds.LARGEST["models"]
    assert not {s.run_id for s in largest} & {s.run_id for s in ds.specs(stage=1) + ds.specs(stage=2)}


def test_stage_4_is_full_data_on_one_held_out_draw_and_new_runs():
    full = ds.specs(stage=4)
    assert {s.n_shots for s in full} == {None} and {s.data_seed for s in full} == {0}
    assert {s.model for s in full} == set(ds.FULL["models"]) and len(full) == 3 * ds.FULL["seeds"]
    assert not {s.run_id for s in full} & {s.run_id for s in ds.specs(stage=1) + ds.specs(stage=2) + ds.specs(stage=3)}



def test_the_dose_study_s_table_command_refuses_an_empty_store_before_writing(tmp_path):
    import pytest

    from vpcost_utils.errors import SpecError

    before = (ds.DOCS / "runs.csv").read_bytes()
    with pytest.raises(SpecError, match="no record in the store"):  # stages 1-3's records were not archived
        ds.write(tmp_path / "empty-store")
    assert (ds.DOCS / "runs.csv").read_bytes() == before
