"""One preflight for every entry point: a grid with many problems fails once, listing them all, creating nothing."""

from __future__ import annotations

import os

import pytest

from vpcost_utils.config import RunSpec
from vpcost_utils.nb import notebook
from vpcost_utils.running import preflight


def test_every_problem_of_a_grid_is_listed_at_once(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    specs = [
        RunSpec("smallcnn/dense", "digits", n_shots=2, canvas=24),  # 32-px digits in a 24-px canvas
        RunSpec("smallcnn/nope", "digits", n_shots=2),  # unknown model
        RunSpec("smallcnn/dense", "no_such_set", n_shots=2),  # unknown dataset
        RunSpec("smallcnn/dense", "digits", n_shots=30, holdout=20),  # N + hold-out above every class
        RunSpec("smallcnn/prune-90", "digits", n_shots=2, canvas=24),
    ]
    try:
        with pytest.raises(preflight.PreflightError) as info:
            preflight.check(specs, store_root=locked / "runs", device="cuda:3" if not _cuda() else None)
    finally:
        os.chmod(locked, 0o700)
    problems = info.value.problems
    text = str(info.value)
    assert "nothing was trained" in text
    assert any("smallcnn/nope" in p for p in problems) and any("no_such_set" in p for p in problems)
    assert sum("larger than" in p and "24-px canvas" in p for p in problems) == 2  # each model once
    assert any("hold out 20" in p or "after holding out 20" in p for p in problems)
    if os.geteuid() != 0:  # root may write anywhere
        assert any("cannot be written" in p for p in problems)
    if not _cuda():
        assert any("no CUDA device" in p for p in problems)
    assert not (locked / "runs").exists()  # the check creates nothing


def test_a_grid_that_can_run_passes_and_the_notebooks_use_the_same_check(tmp_path, monkeypatch):
    preflight.check([RunSpec("smallcnn/dense", "digits", n_shots=2)], store_root=tmp_path / "runs", device="cpu")
    seen = []
    monkeypatch.setattr(preflight, "check", lambda specs, **kw: seen.append((len(specs), kw)))
    notebook.preflight([RunSpec("smallcnn/dense", "digits")], store_root=tmp_path, device="cpu")
    assert seen == [(1, {"store_root": tmp_path, "device": "cpu"})]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_an_unwritable_output_folder_is_named(tmp_path, monkeypatch):
    # as root every permission bit is ignored, so the refusal of a read-only disk is simulated at os.access
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
    problem = preflight._writable(tmp_path / "out" / "runs")
    assert problem and f"{tmp_path} is not a writable folder" in problem and "choose another output_dir" in problem
    monkeypatch.undo()
    assert preflight._writable(tmp_path / "out" / "runs") is None and not (tmp_path / "out").exists()


def test_a_full_disk_is_refused_with_what_the_grid_needs(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    specs = [RunSpec("smallcnn/dense", "digits", n_shots=2, seed=s) for s in range(50)]
    need = 50 * preflight.RECORD_BYTES + (os.cpu_count() or 1) * preflight.CHECKPOINT_BYTES
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - need + 1, need - 1))
    with pytest.raises(preflight.PreflightError, match=r"MB free on its disk.*50 run records") as info:
        preflight.check(specs, store_root=tmp_path / "runs")
    assert len(info.value.problems) == 1 and not (tmp_path / "runs").exists()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, need))
    preflight.check(specs, store_root=tmp_path / "runs")  # exactly enough room: passes


def test_plan_and_sweep_run_the_same_preflight(capsys):
    from vpcost_utils.running import plan, sweep

    assert plan.main(["--profile", "smoke", "--check"]) == 0
    assert "every run of the profile can run here" in capsys.readouterr().out
    assert sweep.main(["--profile", "smoke", "--dry-run", "--check"]) == 0


def test_plan_check_lists_what_a_profile_lacks(capsys, isolated_home, monkeypatch):
    from vpcost_utils.running import plan

    monkeypatch.setenv("VPCOST_OFFLINE", "1")  # the quick profile's checkpoints and datasets are not here
    assert plan.main(["--profile", "quick", "--check"]) == 2
    out = capsys.readouterr().out
    assert "nothing was trained" in out and "resnet50/dense" in out and "cifar10" in out


def test_a_model_not_built_yet_is_checked_through_its_parent_without_building(tmp_path, capsys):
    from vpcost_utils.models import ModelEntry, register
    from vpcost_utils.models._registry import _ENTRIES

    def never(entry):
        raise AssertionError("the preflight built the model")

    name = "smallcnn/test-unbuilt"
    register(ModelEntry(name, arch="smallcnn", compression="unstructured", method="gmp-distill", loader=never,
                        parent="smallcnn/dense", unbuilt=lambda: f"{name} is not built yet"))
    try:
        preflight.check([RunSpec(name, "digits", n_shots=2)], store_root=tmp_path / "runs")
        assert f"{name} is not built yet" in capsys.readouterr().err
        with pytest.raises(preflight.PreflightError, match="24-px canvas"):  # the parent's canvas is checked
            preflight.check([RunSpec(name, "digits", n_shots=2, canvas=24)], store_root=tmp_path / "runs")
    finally:
        _ENTRIES.pop(name, None)
