"""One skeleton for every task: the schedule's arithmetic, and the planner's passes against a counted run."""

from __future__ import annotations

import pytest
import torch

from vpcost_utils.config import RunSpec
from vpcost_utils.loop import Schedule
from vpcost_utils.running import plan


def test_a_step_cap_ends_the_run_mid_epoch_and_the_last_epoch_run_is_evaluated():
    s = Schedule(epochs=10, steps_per_epoch=3, eval_every=4, max_steps=7)
    assert (s.total_steps, s.epochs_run) == (7, 3)
    assert [s.steps_in(e) for e in range(4)] == [3, 3, 1, 0]
    assert [e + 1 for e in range(s.epochs_run) if s.evaluates_after(e)] == [3]
    assert s.images(n_train=20, batch=8) == 20 + 20 + 8
    full = Schedule(epochs=10, steps_per_epoch=3, eval_every=4)
    assert (full.epochs_run, full.evaluations, full.total_steps) == (10, 3, 30)  # after epochs 4, 8 and 10


class Counted:
    """Counts images through a forward function, split by whether autograd records them (training) or not
    (mapping votes, test passes, quick validations)."""

    def __init__(self):
        self.train = self.no_grad = 0

    def wrap(self, forward, size=lambda out: out.shape[0]):
        def counted(*args, **kwargs):
            out = forward(*args, **kwargs)
            n = size(out)
            if torch.is_grad_enabled():
                self.train += n
            else:
                self.no_grad += n
            return out

        return counted


class _Wrapped(torch.nn.Module):
    def __init__(self, inner, counter):
        super().__init__()
        self.inner, self.forward = inner, counter.wrap(inner.forward)


@pytest.mark.parametrize("method, max_steps", [("ilm", None), ("flm", 5), ("rlm", 4)])
def test_the_planner_counts_what_a_vp_run_executes(monkeypatch, method, max_steps):
    from vpcost_utils.vp import train_vp as train

    counter, real = Counted(), train.prepare_backbone
    monkeypatch.setattr(train, "prepare_backbone",
                        lambda *a, **k: (lambda b, info: (_Wrapped(b, counter), info))(*real(*a, **k)))
    # digits: 10 classes x N=2 = 20 images, batch 8: 3 steps an epoch; the cap cuts the second epoch short
    spec = RunSpec("smallcnn/dense", "digits", method=method, n_shots=2, epochs=4, eval_every=3, max_test=100,
                   max_steps=max_steps)
    record = train.run_vp(spec, progress=False)
    passes = plan.run_passes(spec)
    assert (counter.train, counter.no_grad) == (passes.train, passes.mapping + passes.test)
    assert record["data"]["steps"] == (max_steps or 12)
    assert record["curves"]["eval_epoch"] == ([3, 4] if max_steps is None else [2])


def _counted_clip() -> str:
    """A tinyclip after one pretraining step, registered once (counting needs no accuracy)."""
    from vpcost_utils.clip.tiny import pretrain_tinyclip
    from vpcost_utils.models import ModelEntry, list_models, register
    from vpcost_utils.models.clip_models import _source_model

    name = "testclip/counted"
    if name not in list_models():
        model = pretrain_tinyclip(steps=1, batch=8)
        register(ModelEntry(name, arch="tinyclip", compression="dense", method="dense",
                            loader=lambda entry: _source_model(entry, model)))
    return name


def test_the_planner_counts_what_a_clip_run_executes(monkeypatch, tmp_path):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.clip import train_clip as clip_train

    name = _counted_clip()
    counter = Counted()
    monkeypatch.setattr(clip_train, "clip_logits", counter.wrap(clip_train.clip_logits))
    spec = RunSpec(model=name, dataset="synth_colours", task="clip", method="ilm-vp", epochs=4, batch_size=32,
                   eval_every=3, max_steps=25)  # 10 steps an epoch: the third epoch stops after 5
    record = clip_train.run_clip(spec, progress=False)
    passes = plan.run_passes(spec)
    assert (counter.train, counter.no_grad) == (passes.train, passes.mapping + passes.test)
    assert record["data"]["steps"] == 25 and record["curves"]["eval_epoch"] == [3]


def test_the_planner_counts_what_a_crossmodal_run_executes(monkeypatch, tmp_path):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from test_crossmodal import _register_random_backbone

    from vpcost_utils.crossmodal import train_crossmodal as cm_train

    monkeypatch.setattr(cm_train, "VALIDATE_EVERY", 10)  # quick validations after steps 1, 11, 21
    counter = Counted()
    monkeypatch.setattr(cm_train, "mapped_logits", counter.wrap(cm_train.mapped_logits))
    spec = RunSpec(model=_register_random_backbone(), dataset="synth_text4", task="crossmodal", method="max",
                   epochs=3, batch_size=16, eval_every=1, max_steps=30)
    record = cm_train.run_crossmodal(spec, progress=False)
    passes = plan.run_passes(spec)
    # the planner counts the picked checkpoint's full test pass always; the run skips it when the pick is the last
    skipped = record["data"]["n_test"] if record["metrics"]["paper_best_step"] == 30 else 0
    assert (counter.train, counter.no_grad) == (passes.train, passes.test - skipped)
    assert record["data"]["steps"] == 30 and record["curves"]["quick_val_step"] == [1, 11, 21]
