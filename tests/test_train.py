"""End-to-end VP runs on the generated offline task with the small source CNN (trained once, cached)."""

import pytest
import torch

from vpcost_utils.config import RunSpec
from vpcost_utils.errors import SpecError
from vpcost_utils.running.runs import execute
from vpcost_utils.vp import train_vp as train

torch.set_num_threads(2)


def test_ilm_vp_is_clearly_above_chance_and_deterministic():
    spec = RunSpec("smallcnn/dense", "synth_shapes", method="ilm", n_shots=10, epochs=6, eval_every=3)
    a = execute(spec, device="cpu", progress=False)
    chance = 100 / 10
    assert a["metrics"]["acc"] > 2 * chance
    assert a["curves"]["eval_epoch"] == [3, 6] and len(a["curves"]["train_loss"]) == 6
    assert sorted(a["mapping"]) == sorted(set(a["mapping"])) and len(a["mapping"]) == 10
    assert a["model"]["name"] == "smallcnn/dense" and a["env"]["versions"]["torch"]
    b = execute(spec, device="cpu", progress=False)
    assert a["metrics"] == b["metrics"] and a["mapping_history"] == b["mapping_history"]


def test_ilm_recomputes_the_mapping_every_epoch_and_flm_once(monkeypatch):
    calls = []
    real = train._frequency_mapping

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_frequency_mapping", counting)
    base = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=3, eval_every=3)
    ilm = train.run_vp(base.replace(method="ilm"), progress=False)
    assert len(calls) == 3
    calls.clear()
    flm = train.run_vp(base.replace(method="flm"), progress=False)
    assert len(calls) == 1
    # ILM's epoch-0 mapping is FLM's mapping (same seed, same initial prompt)
    assert ilm["mapping_history"][0] == flm["mapping_history"][0]
    calls.clear()
    rlm = train.run_vp(base.replace(method="rlm"), progress=False)
    assert calls == [] and len(rlm["mapping_history"]) == 1


def test_lr_schedule_is_multistep_at_50_and_72_percent():
    record = train.run_vp(RunSpec("smallcnn/dense", "digits", method="rlm", n_shots=1, epochs=25, eval_every=25),
                          progress=False)
    lrs = record["curves"]["lr"]
    assert lrs[:12] == [0.01] * 12 and lrs[12] == pytest.approx(0.001) and lrs[18] == pytest.approx(0.0001)


def test_too_many_shots_is_a_clear_error_before_training():
    with pytest.raises(SpecError, match="n_shots=25"):
        train.load_data(RunSpec("smallcnn/dense", "digits", n_shots=25))


def test_saved_prompts_are_frames_at_the_requested_epochs():
    record = train.run_vp(RunSpec("smallcnn/dense", "digits", n_shots=1, epochs=2, eval_every=2, save_prompts=(1, 2)),
                          progress=False)
    frames = record["_prompts"]
    assert sorted(frames) == [1, 2] and frames[1].shape == (3, 64, 64)
    assert torch.all(frames[2][:, 16:48, 16:48] == 0)  # the image region carries no prompt
