"""The verdict study: the mini profile's own N=10 runs, seed blocks started by the clock, never by the results."""

from __future__ import annotations

import pandas as pd

from vpcost_utils import grids, profiles, verdict_study


def test_the_study_runs_the_mini_profiles_own_n10_runs_seed_by_seed():
    specs = verdict_study.specs(range(4))
    ids = [s.run_id for s in specs]
    assert len(ids) == len(set(ids))  # the dense runs the two sections share run once
    wanted = {s.run_id for sec in verdict_study.SECTIONS
              for s in grids.section_specs(sec, profiles.settings(sec, "mini", seeds=(0, 1, 2, 3)))
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
    from vpcost_utils import sweep

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
