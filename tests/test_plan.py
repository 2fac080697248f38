"""The sweep planner's image-pass counts, checked against a grid counted by hand."""

import pytest

from vpcost_utils import grids, profiles
from vpcost_utils.config import RunSpec
from vpcost_utils.nb import reproduce
from vpcost_utils.rehearsal import thinning
from vpcost_utils.running import plan, sweep


def test_passes_of_a_small_grid_by_hand():
    ilm = RunSpec("m/x", "cifar10", method="ilm", n_shots=10, epochs=10, eval_every=4)
    # 10 shots x 10 classes; ILM maps every epoch; tests after epochs 4, 8 and 10 on all 10,000 images
    assert plan.run_passes(ilm) == plan.Passes(train=1_000, mapping=1_000, test=30_000)
    flm = RunSpec("m/x", "cifar10", method="flm", epochs=2, eval_every=10, max_test=500)
    assert plan.run_passes(flm) == plan.Passes(train=100_000, mapping=50_000, test=500)
    assert plan.run_passes(flm.replace(method="rlm")).mapping == 0
    # Flowers102 has 10 images per class: N=20 is capped by the split (1,020 images)
    assert plan.run_passes(RunSpec("m/x", "flowers102", n_shots=20, epochs=1, eval_every=1)).train == 1_020
    cross = RunSpec("m/x", "splice", task="crossmodal", method="max", epochs=100, max_steps=1_000)
    # batch 4, capped at 1,000 steps (2 epochs of 638 steps, the second cut short): one test pass after the last
    # epoch, the reference's quick validations after steps 1 and 501 on 102 x 4 test examples each, and the full
    # test pass of the checkpoint they pick
    assert plan.run_passes(cross) == plan.Passes(train=4_000, mapping=0, test=638 + 2 * 408 + 638)
    assert plan.hours(plan.Passes(train=360_000, test=1_080_000), (100.0, 300.0)) == 2.0


def test_a_run_shared_by_sections_is_counted_once():
    by_section = grids.profile_runs("mini")
    ids = [s.run_id for specs in by_section.values() for s in specs]
    assert len(ids) == len(set(ids))
    assert by_section["calibration"] == []  # the mini calibration runs are the N=50 transfer runs
    assert plan.evaluations(16, 16) == 1 and plan.evaluations(100, 10) == 10 and plan.evaluations(25, 10) == 3


def test_the_command_prints_every_section_and_the_total(capsys):
    assert plan.main(["--profile", "smoke", "--ips", "smallcnn=1000:3000", "tinyclip=1000"]) == 0
    out = capsys.readouterr().out
    for word in ("sparse_transfer", "cross_modal", "total"):
        assert word in out
    assert "leave out" not in out


def test_a_target_half_width_prints_seeds_and_hours_from_the_pilot_sd(capsys):
    from vpcost_utils.stats.sequential import planned_seeds

    argv = ["--profile", "smoke", "--ips", "smallcnn=1000:3000", "tinyclip=1000", "--target-halfwidth", "2",
            "--pilot-sd", "3", "--test-se", "0.5"]
    assert plan.main(argv) == 0
    out = capsys.readouterr().out
    need = planned_seeds(2.0, 3.0, 5, 0.5)
    assert need == 34 and f"{need} seeds per cell" in out and "device-hours" in out
    assert "the profile's 1 seed(s) give no interval" in out
    assert plan.main([*argv[:-4], "--pilot-sd", "3", "--test-se", "1.0"]) == 0  # t(4) * 1.0 > 2: unreachable
    assert "out of reach at any number of seeds" in capsys.readouterr().out


def test_a_target_without_a_pilot_sd_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        plan.main(["--profile", "smoke", "--target-halfwidth", "2"])
    assert "--pilot-sd" in capsys.readouterr().err


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_reproduce_plan_sweep_and_rehearse_list_the_same_runs(profile, monkeypatch, capsys):
    """One path from a profile to its runs (``grids.section_runs``): every entry point sees the same run ids."""
    counted, packed = [], []
    monkeypatch.setattr(plan, "run_passes", lambda spec: counted.append(spec.run_id) or plan.Passes(1, 0, 0))
    assert plan.main(["--profile", profile]) == 0
    real_chunks = sweep.chunk_specs
    monkeypatch.setattr(sweep, "chunk_specs", lambda specs, n: packed.extend(s.run_id for s in specs)
                        or real_chunks(specs, n))
    assert sweep.main(["--profile", profile, "--dry-run"]) == 0
    capsys.readouterr()
    reproduced = {s.run_id for s in reproduce.planned_runs(profile)}
    rehearsed = [s.run_id for s in thinning.full_runs(profile)]
    assert len(rehearsed) == len(set(rehearsed)) and reproduced
    assert reproduced == set(counted) == set(packed) == set(rehearsed)
