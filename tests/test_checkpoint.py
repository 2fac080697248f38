"""Mid-run checkpoints: an interrupted run resumes to the uninterrupted record; bad checkpoints never resume."""

from __future__ import annotations

import json

import pytest
import torch

from vpcost_utils import checkpoint, loop
from vpcost_utils.config import RunSpec
from vpcost_utils.errors import VpcostError
from vpcost_utils.running.runs import execute, run
from vpcost_utils.running.store import ResultStore
from vpcost_utils.studies import kill_resume

SPEC = RunSpec("smallcnn/dense", "digits", n_shots=2, seed=1, epochs=6, eval_every=2, max_test=150)
RESULT = ("metrics", "curves", "mapping", "mapping_history", "test_predictions", "convergence")


@pytest.fixture(scope="module")
def uninterrupted():
    return execute(SPEC, progress=False)


def test_an_interrupted_run_resumes_to_the_uninterrupted_record(interrupt_after, tmp_path, monkeypatch,
                                                                uninterrupted):
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")  # a save at every epoch end
    store = ResultStore(tmp_path)
    interrupt_after(3)
    with pytest.raises(KeyboardInterrupt):
        run(SPEC, store, progress=False)
    saved = checkpoint.checkpoint_path(tmp_path, SPEC.run_id)
    assert saved.exists() and not store.has(SPEC)
    monkeypatch.undo()  # the process "restarts": the real loop, counted
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
    calls = interrupt_after(99)
    record = run(SPEC, store, progress=False)
    assert len(calls) == 3  # epochs 4-6 only: the first three came from the checkpoint
    assert record["runtime"]["resumed_at_epoch"] == 3
    for key in RESULT:
        assert record[key] == uninterrupted[key], key
    assert not saved.exists()  # removed once the record is written


def test_no_checkpoint_is_written_before_its_interval(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "3600")
    record = execute(SPEC.replace(epochs=2), progress=False, checkpoint=tmp_path / "c.pt")
    assert record["runtime"]["checkpoint_saves"] == 0 and not (tmp_path / "c.pt").exists()
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "soon")
    with pytest.raises(VpcostError, match="must be a number of seconds"):
        checkpoint.interval_seconds()


def _saved_after_three_epochs(path, monkeypatch, interrupt_after):
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
    interrupt_after(3)
    with pytest.raises(KeyboardInterrupt):
        execute(SPEC, progress=False, checkpoint=path)
    monkeypatch.undo()
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")


@pytest.mark.parametrize("damage", ["truncated", "other run", "other protocol", "other threads", "other cpu"])
def test_a_bad_checkpoint_is_refused_and_the_run_starts_from_zero(tmp_path, monkeypatch, uninterrupted, damage,
                                                                   interrupt_after):
    path = tmp_path / "c.pt"
    _saved_after_three_epochs(path, monkeypatch, interrupt_after)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        saved = torch.load(path, weights_only=True)
        key, value = {"other run": ("run_id", "0123456789ab"), "other protocol": ("protocol", 1),
                      "other threads": ("threads", 7), "other cpu": ("arithmetic", "native-avx512-not-here")}[damage]
        torch.save({**saved, key: value}, path)
    with pytest.warns(UserWarning, match="refused") as warned:
        record = execute(SPEC, progress=False, checkpoint=path)
    assert "starts from epoch 0" in str(warned[0].message)
    assert record["runtime"]["resumed_at_epoch"] == 0
    assert record["metrics"] == uninterrupted["metrics"]


def test_the_kill_script_kills_resumes_and_compares(tmp_path):
    spec = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=8, eval_every=4)
    result = kill_resume.trial(spec, tmp_path, kills=2, seed=3)
    assert result["kills"] >= 2 and result["runs"] >= 1
    assert result["identical"] and result["differing_fields"] == [] and not result["checkpoint_left"]


def _clip_spec() -> RunSpec:
    from test_loop import _counted_clip  # a 1-step tinyclip, registered once

    return RunSpec(model=_counted_clip(), dataset="synth_colours", task="clip", method="ilm-vp", epochs=4,
                   batch_size=32, eval_every=2, max_steps=35)


def _crossmodal_spec() -> RunSpec:
    from test_crossmodal import _register_random_backbone

    return RunSpec(model=_register_random_backbone(), dataset="synth_text4", task="crossmodal", method="max",
                   epochs=3, batch_size=16, eval_every=1, max_steps=120)


@pytest.mark.parametrize("make_spec", [_clip_spec, _crossmodal_spec], ids=["clip", "crossmodal"])
def test_clip_and_crossmodal_runs_resume_through_the_same_loop(killed_then_resumed, tmp_path, make_spec):
    spec = make_spec()
    whole = execute(spec, progress=False)
    resumed, calls = killed_then_resumed(spec, 2, tmp_path / "c.pt")
    assert len(calls) == loop.Schedule.for_run(spec, resumed["data"]["n_train"]).epochs_run - 2
    for key in ("metrics", "curves", "mapping"):
        assert resumed[key] == whole[key], key


def test_a_preempted_cluster_chunk_resumes_the_run_it_was_in(interrupt_after, tmp_path, monkeypatch,
                                                              uninterrupted):
    pytest.importorskip("submitit")
    from vpcost_utils.running import sweep

    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
    store = ResultStore(tmp_path)
    job = sweep.ChunkJob([SPEC.to_dict()], str(tmp_path), None)
    interrupt_after(4)  # the chunk is preempted in its only run's fifth epoch
    with pytest.raises(KeyboardInterrupt):
        job()
    monkeypatch.undo()
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
    requeued = job.checkpoint()  # what submitit calls before it requeues the chunk
    calls = interrupt_after(99)
    assert requeued.function(*requeued.args, **requeued.kwargs) == []
    record = store.read(SPEC.run_id)
    assert len(calls) == 2 and record["runtime"]["resumed_at_epoch"] == 4  # epochs 5-6 only
    for key in RESULT:  # the stored record went through JSON (tuples came back as lists)
        assert record[key] == json.loads(json.dumps(uninterrupted[key])), key
