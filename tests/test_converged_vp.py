"""The converged-VP study: its runs pair with the LP study's, any finished prefix is balanced, the tables recover
known gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vpcost_utils.studies import converged_vp as cv
from vpcost_utils.studies import dose_study as ds

# What decides a run's images: the N-shot draw, the held-out images and the test subset.
SAMPLE_FIELDS = ("dataset", "n_shots", "seed", "sample_seed", "max_test", "holdout", "canvas")


def test_every_vp_run_draws_the_images_of_an_lp_run_of_the_dose_study():
    lp = {(s.model, *(getattr(s, f) for f in SAMPLE_FIELDS)) for s in ds.specs(stage=1)}
    for spec in cv.specs():
        assert (spec.model, *(getattr(spec, f) for f in SAMPLE_FIELDS)) in lp, spec
        assert spec.method == "ilm" and spec.epochs == 100 and spec.canvas is None  # the model's own 224 px


def test_runs_are_interleaved_by_seed_so_a_session_cut_short_leaves_a_paired_set():
    stage = cv.specs(stage=1)
    models, seeds = cv.DESIGN["stages"][1]
    assert stage[0].model == cv.DENSE and len(stage) == len(models) * seeds
    for k in range(1, seeds + 1):
        done = stage[:k * len(models)]
        assert {s.seed for s in done} == set(range(k))
        assert all(sum(s.model == m for s in done) == k for m in models)


def test_vp_beside_lp_recovers_known_gaps_on_the_same_seeds():
    rng = np.random.default_rng(0)
    vp_rows, lp_rows = [], []
    for seed in range(3):
        vp_base, lp_base = 60 + rng.normal(0, 3), 75 + rng.normal(0, 1)
        for model, vp_gap, lp_gap in ((cv.DENSE, 0, 0), (cv.POSITIVE, 8.0, 6.0), ("m/other", 0.0, 3.0)):
            vp_rows.append({"model": model, "seed": seed, "acc": vp_base - vp_gap})
            lp_rows.append({"model": model, "seed": seed, "n_shots": 10, "method": "lp", "acc": lp_base - lp_gap})
    lp_rows.append({"model": cv.DENSE, "seed": 9, "n_shots": 10, "method": "lp", "acc": 0.0})  # no VP twin: unused
    table = cv.beside_lp(pd.DataFrame(vp_rows), pd.DataFrame(lp_rows)).set_index("model")
    assert table.loc[cv.POSITIVE, "vp_gap"] == 8.0 and table.loc[cv.POSITIVE, "lp_gap"] == 6.0
    assert table.loc["m/other", "vp_minus_lp"] == -3.0 and (table["seeds"] == 3).all()
    assert table.loc[cv.POSITIVE, "vp_gap_low"] <= 8.0 <= table.loc[cv.POSITIVE, "vp_gap_high"]


def test_the_convergence_table_has_one_row_per_evaluated_epoch():
    record = {"run_id": "r", "spec": {"model": cv.DENSE, "seed": 0}, "convergence": {"settled": True},
              "curves": {"eval_epoch": [16, 32, 100], "test_acc": [40.0, 50.0, 55.0]}}
    table = cv.convergence([record])
    assert list(table["epoch"]) == [16, 32, 100] and list(table["test_acc"]) == [40.0, 50.0, 55.0]
    assert table["settled"].all()


def test_the_int8_cell_pairs_by_seed_with_dense_s_record_or_its_published_value(tmp_path):
    from vpcost_utils.running.store import ResultStore

    store, docs = ResultStore(tmp_path / "store"), tmp_path / "docs"
    docs.mkdir()
    dense_acc = {0: 60.0, 1: 62.0, 2: 58.0}
    published = [{"run_id": s.run_id, "model": cv.DENSE, "seed": s.seed, "acc": dense_acc[s.seed], "ece": 0.05,
                  "ece_temp_scaled": 0.03} for s in cv.specs(stage=1) if s.model == cv.DENSE]
    published[0]["acc"] = -1.0  # seed 0's record is in the store below: the record, not the CSV, must be used
    pd.DataFrame(published).to_csv(docs / "runs.csv", index=False)

    def record(spec, acc, ece):
        return {"run_id": spec.run_id, "spec": spec.to_dict(), "protocol": 1,
                "metrics": {"acc": acc, "ece": ece, "ece_temp_scaled": 0.03}}

    store.write(record(next(s for s in cv.specs(stage=1) if s.model == cv.DENSE and s.seed == 0), 60.0, 0.05))
    for spec, gap in zip(cv.specs(stage=2), (1.0, 3.0, 2.0), strict=True):
        store.write(record(spec, dense_acc[spec.seed] - gap, 0.05 + gap / 100))
    lp = pd.DataFrame([{"model": m, "seed": s, "n_shots": 10, "method": "lp", "acc": 80.0 - (g if m == cv.INT8 else 0)}
                       for s, g in ((0, 0.5), (1, 1.5), (2, 1.0)) for m in (cv.DENSE, cv.INT8)])
    lp.to_csv(tmp_path / "lp.csv", index=False)
    table = cv.int8_cell(store.root, docs, tmp_path / "lp.csv").set_index("metric")
    assert table.loc["acc", "seeds"] == 3 and table.loc["acc", "gap"] == 2.0
    assert table.loc["acc", "per_seed"] == "+1.00 +3.00 +2.00"
    assert np.isclose(table.loc["ece", "gap"], -2.0) and np.isclose(table.loc["ece_temp_scaled", "gap"], 0.0)
    assert table.loc["lp acc", "gap"] == 1.0 and table.loc["vp minus lp acc", "gap"] == 1.0
    assert table.loc["acc", "gap_low"] < 2.0 < table.loc["acc", "gap_high"]
    dense_0 = next(s.run_id for s in cv.specs(stage=1) if s.model == cv.DENSE and s.seed == 0)
    assert sorted(p.stem for p in (docs / "records").glob("*.json")) == sorted([s.run_id for s in cv.specs(stage=2)]
                                                                               + [dense_0])
    assert not table.index.str.contains("test set").any()  # dense's seeds 1-2 have no per-image outcomes here
