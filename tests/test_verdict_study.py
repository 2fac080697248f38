"""The verdict study: the mini profile's own N=10 runs, seed blocks started by the clock, never by the results."""

from __future__ import annotations

import pandas as pd
import pytest

from vpcost_utils import grids
from vpcost_utils.arithmetic import arithmetic_block
from vpcost_utils.studies import verdict_study


def test_the_study_runs_the_mini_profiles_own_n10_runs_seed_by_seed():
    specs = verdict_study.specs(range(4))
    ids = [s.run_id for s in specs]
    assert len(ids) == len(set(ids))  # the dense runs the two sections share run once
    wanted = {s.run_id for sec in verdict_study.SECTIONS
              for s in grids.section_runs(sec, "mini", seeds=(0, 1, 2, 3))
              if s.n_shots == 10}
    assert set(ids) == wanted  # the same records `make reproduce PROFILE=mini` makes for seeds 0-2
    assert [s.seed for s in specs] == sorted(s.seed for s in specs)  # seed-major: every cell gains seeds together
    models = {s.model for s in specs}
    assert "efficientnet_lite0/dense" in models and len(models) == 4 and {s.dataset for s in specs} == {
        "mnist", "fashion_mnist"}


def test_finished_seeds_is_the_prefix_every_cell_has():
    three = [s.run_id for s in verdict_study.specs(range(3))]
    partial = [s.run_id for s in verdict_study.specs(range(3, 4))][:-1]  # seed 3 misses one run
    assert verdict_study.finished_seeds(pd.DataFrame({"run_id": three + partial})) == 3
    assert verdict_study.finished_seeds(pd.DataFrame({"run_id": three[1:]})) == 0


def test_the_budget_decides_how_many_blocks_start_and_never_cuts_one(tmp_path, monkeypatch):
    from vpcost_utils.running import sweep

    clock, started = [0.0], []

    def fake_grid(todo, store, **kwargs):
        started.append(sorted({s.seed for s in todo}))
        clock[0] += 1000.0  # every block takes 1000 s
        return "ran"

    monkeypatch.setattr(verdict_study.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(sweep, "run_grid", fake_grid)
    monkeypatch.setattr(sweep, "pending", lambda specs, store: list(specs))
    verdict_study.run(tmp_path, hours=2500 / 3600, max_seeds=40)
    # block 0-1 at t=0, block 2-3 at t=1000 (1000 + 1000 <= 2500), none at t=2000 (2000 + 1000 > 2500)
    assert started == [[0, 1], [2, 3]]


def _write(store, spec, acc):
    """A record whose first acc % of 200 test images are right (the per-image outcomes match the accuracy)."""
    import torch

    from vpcost_utils import metrics
    from vpcost_utils.config import PROTOCOL

    labels = torch.arange(10).repeat(20)
    hits = torch.zeros(200, dtype=torch.bool)
    hits[: int(round(acc * 2))] = True
    logits = torch.zeros(200, 10)
    logits[torch.arange(200), torch.where(hits, labels, (labels + 1) % 10)] = 5.0
    store.write({"run_id": spec.run_id, "protocol": PROTOCOL,
                 "arithmetic": arithmetic_block(1), "spec": spec.to_dict(),
                 "metrics": {"acc": 100 * hits.double().mean().item(), "ece": 0.1},
                 "test_predictions": metrics.encode_predictions(logits, labels),
                 "env": {"wall_time_s": 10.0, "git_commit": "abc"}})


def test_the_analysis_and_the_kept_run_table_use_the_same_finished_seeds(tmp_path, capsys):
    from vpcost_utils.running.store import ResultStore

    store = ResultStore(tmp_path / "runs")
    gaps = {0: 2.0, 1: 6.0, 2: 10.0}  # every compressed model is 2, 6, 10 points below dense on seeds 0, 1, 2
    for spec in verdict_study.specs(range(3)):
        _write(store, spec, 50.0 if spec.model.endswith("/dense") else 50.0 - gaps[spec.seed])
    extra = verdict_study.specs(range(3, 4))
    _write(store, extra[0], 99.0)  # seed 3 unfinished: must count nowhere
    table = verdict_study.table(tmp_path)
    assert len(table) == 6 and (table["pairs"] == 3).all()
    assert table["gap"].to_numpy() == pytest.approx(6.0) and (table["gap_low"] < 6.0).all()
    csv = tmp_path / "kept" / "runs.csv"
    assert verdict_study.main(["--output", str(tmp_path), "--analyse", "--runs-csv", str(csv)]) == 0
    kept = pd.read_csv(csv)
    assert len(kept) == 3 * 8 and set(kept["seed"]) == {0, 1, 2} and extra[0].run_id not in set(kept["run_id"])
    assert (kept["git_commit"] == "abc").all() and (kept["cpu_kernels"] == arithmetic_block(1)["cpu_kernels"]).all()
    dense = kept[kept["model"].str.endswith("/dense")].set_index(["dataset", "seed"])["acc"]
    for r in table.itertuples():  # the kept table alone gives back every cell's gap
        comp = kept[kept["model"] == r.model].set_index(["dataset", "seed"])["acc"]
        assert (dense.loc[r.dataset] - comp.loc[r.dataset]).mean() == pytest.approx(r.gap)


def test_steins_second_stage_gives_each_cell_the_seeds_its_pilot_sd_asks_for(tmp_path, monkeypatch):
    from vpcost_utils.running import sweep
    from vpcost_utils.running.store import ResultStore
    from vpcost_utils.stats import intervals

    store = ResultStore(tmp_path / "runs")
    pilot_gaps = {0: 2.0, 1: 6.0, 2: 10.0}
    for spec in verdict_study.specs(range(3)):
        _write(store, spec, 50.0 if spec.model.endswith("/dense") else 50.0 - pilot_gaps[spec.seed])
    plan = verdict_study.stein_plan(tmp_path, 8.0, 3, 40)
    table = verdict_study.table(tmp_path, 3)
    for r in table.itertuples():
        var = (r.test_se ** 2) if r.test_se == r.test_se else 0.0
        assert plan[(r.model, r.dataset, "10")] == intervals.stein_seeds(list(pilot_gaps.values()), 8.0, var)
        assert plan[("efficientnet_lite0/dense", r.dataset, "10")] >= plan[(r.model, r.dataset, "10")]
    with pytest.raises(SystemExit, match="pilot needs seeds 0..3"):
        verdict_study.stein_plan(tmp_path, 8.0, 4, 40)  # seed 3 is not finished in any cell
    wanted = verdict_study.stein_specs(plan)
    for (model, dataset, _), n in plan.items():  # exactly seeds 0..n-1 of every cell
        assert sorted(s.seed for s in wanted if s.model == model and s.dataset == dataset) == list(range(n))
    ran = []
    monkeypatch.setattr(sweep, "run_grid", lambda todo, store, **kw: ran.extend(todo) or "ran")
    verdict_study.run_stein(tmp_path, 8.0, 3, 40)
    assert {s.run_id for s in ran} == {s.run_id for s in wanted} - {s.run_id for s in verdict_study.specs(range(3))}
    for spec in ran:  # the second stage's gaps are all 0: the interval still takes the pilot's sd and t
        _write(store, spec, 50.0)
    second = verdict_study.table(tmp_path, stein=(8.0, 3))
    assert (second["rule"] == "stein(n0=3)").all() and second["seed_sd"].to_numpy() == pytest.approx(4.0)
    for r in second.itertuples():
        assert r.pairs == plan[(r.model, r.dataset, "10")] and r.halfwidth <= 8.0
    kept = verdict_study.runs_table(tmp_path, stein=(8.0, 3))  # the kept table holds exactly the stage's runs
    assert set(kept["run_id"]) == {s.run_id for s in wanted}


def test_any_budget_of_the_mini_profile_can_be_studied_and_another_is_refused(capsys):
    one = verdict_study.specs(range(2), 1)
    assert {s.n_shots for s in one} == {1} and len(one) == len(verdict_study.specs(range(2)))
    wanted = {s.run_id for sec in verdict_study.SECTIONS
              for s in grids.section_runs(sec, "mini", seeds=(0, 1)) if s.n_shots == 1}
    assert {s.run_id for s in one} == wanted
    fifty = verdict_study.specs(range(2), 50)  # only what the profile runs at N=50: no int8 there
    wanted = {s.run_id for sec in verdict_study.SECTIONS
              for s in grids.section_runs(sec, "mini", seeds=(0, 1)) if s.n_shots == 50}
    assert {s.run_id for s in fifty} == wanted and wanted and not any("int8" in s.model for s in fifty)
    with pytest.raises(SystemExit):
        verdict_study.main(["--shots", "5", "--analyse"])
    assert "--shots 5 is not a budget of the mini profile; choose one of [1, 10, 50]" in capsys.readouterr().err


@pytest.mark.parametrize("low, high, expected", [(0.5, 4.0, "compressed transfers worse"),
                                                 (-6.0, -1.0, "compressed transfers better"),
                                                 (-2.0, 5.1, "no gap larger than +-5.1 points")])
def test_each_cell_ends_with_one_of_three_verdicts_in_words(low, high, expected):
    from vpcost_utils.stats import intervals
    from vpcost_utils.stats.verdicts import verdict_words

    assert verdict_words(intervals.verdict(low, high, 12)) == expected
    assert verdict_words(intervals.verdict(low, high, 2)).startswith("no verdict")
