import json

import pytest

from vpcost_utils.arithmetic import arithmetic_block
from vpcost_utils.config import PROTOCOL, RunSpec
from vpcost_utils.running import runs, sweep
from vpcost_utils.running.store import ResultStore

# what runs.execute stamps on every record: without it a record is stale (made by older code) and is redone
STAMP = {"protocol": PROTOCOL, "arithmetic": arithmetic_block(1)}


def _fake_execute(calls, fail_on=(), interrupt_on=()):
    def execute(spec, *, device=None, progress=True, checkpoint=None):
        calls.append(spec.run_id)
        if spec.seed in fail_on:
            raise RuntimeError(f"boom {spec.seed}")
        if spec.seed in interrupt_on:
            raise KeyboardInterrupt
        return {"run_id": spec.run_id, **STAMP, "spec": spec.to_dict(), "metrics": {"acc": 10.0 + spec.seed, "ece": 0.1,
                "per_class_acc": [float("nan"), 1.0]}, "model": {"substitute": False}, "env": {"wall_time_s": 1}}
    return execute


def test_records_are_written_atomically_and_read_back(tmp_path):
    store = ResultStore(tmp_path)
    spec = RunSpec("smallcnn/dense", "digits")
    store.write({"run_id": spec.run_id, **STAMP, "spec": spec.to_dict(), "metrics": {"acc": 1.0, "x": float("nan")}})
    assert [p.name for p in tmp_path.iterdir()] == [f"{spec.run_id}.json"]  # no temporary file left behind
    assert store.read(spec.run_id)["metrics"] == {"acc": 1.0, "x": None}
    assert store.has(spec) and not store.has(spec.replace(seed=1))


def test_grid_is_the_cartesian_product():
    specs = sweep.grid(model=["a/x", "a/y"], dataset="d", method=["flm", "ilm"], n_shots=[1, None])
    assert len(specs) == 8 and {s.model for s in specs} == {"a/x", "a/y"}


def test_rerun_skips_what_is_done_and_resumes_after_interrupt(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    specs = sweep.grid(model="a/x", dataset="d", seed=[0, 1, 2, 3])
    calls = []
    monkeypatch.setattr(runs, "execute", _fake_execute(calls, interrupt_on=(2,)))
    with pytest.raises(KeyboardInterrupt):
        sweep.run_grid(specs, store, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 2  # the two finished runs survived the kill
    calls.clear()
    monkeypatch.setattr(runs, "execute", _fake_execute(calls))
    result = sweep.run_grid(specs, store, progress=False)
    assert (result.done_before, result.ran) == (2, 2) and len(calls) == 2
    calls.clear()
    assert sweep.run_grid(specs, store, progress=False).ran == 0 and calls == []
    table = store.table()
    assert sorted(table["acc"]) == [10.0, 11.0, 12.0, 13.0]


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    specs = sweep.grid(model="a/x", dataset="d", seed=[0, 1, 2])
    monkeypatch.setattr(runs, "execute", _fake_execute([], fail_on=(1,)))
    with pytest.raises(sweep.SweepError, match="1 run"):
        sweep.run_grid(specs, store, progress=False)
    failure = json.loads((tmp_path / f"{specs[1].run_id}.error.json").read_text())
    assert "boom 1" in failure["error"] and failure["spec"]["seed"] == 1
    assert store.has(specs[0]) and store.has(specs[2]) and not store.has(specs[1])
    result = sweep.run_grid(specs, store, progress=False, on_error="record")
    assert result.ran == 0 and len(result.failures) == 1


def test_the_pool_builds_an_unbuilt_model_once_and_trains_ready_models_meanwhile(monkeypatch):
    import dataclasses

    from vpcost_utils import models

    built = {"smallcnn/prune-80": False}
    real = models.get_entry

    def get_entry(name):
        entry = real(name)
        if name in built:  # a model that its first run builds (as a recovered model is)
            return dataclasses.replace(entry, unbuilt=lambda: None if built[name] else "not built yet")
        return entry

    monkeypatch.setattr(models, "get_entry", get_entry)
    specs = [RunSpec(m, "digits", seed=s) for m in ("smallcnn/dense", "smallcnn/prune-80", "smallcnn/prune-90")
             for s in range(3)]
    order = sweep.build_first(specs)
    assert sorted(s.run_id for s in order) == sorted(s.run_id for s in specs)
    # one run of the unbuilt model first, its other runs last: no second worker starts a second build
    assert [(s.model, s.seed) for s in order[:1] + order[-2:]] == [("smallcnn/prune-80", 0), ("smallcnn/prune-80", 1),
                                                                   ("smallcnn/prune-80", 2)]
    built["smallcnn/prune-80"] = True
    assert sweep.build_first(specs) == specs  # nothing to build: the order is the grid's


class _FakePool:
    """A stand-in for the process pool: runs in this process; the first ``die`` pools break like a pool whose
    worker the kernel killed (every future not yet done raises BrokenProcessPool)."""

    pools = 0

    def __init__(self, die: int, done: list):
        self.die, self.done = die, done
        type(self).pools += 1
        self.broken = type(self).pools <= die

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, spec, root, device, wait):
        import concurrent.futures as cf
        from concurrent.futures.process import BrokenProcessPool

        future = cf.Future()
        if self.broken:
            future.set_exception(BrokenProcessPool("A process in the process pool was terminated"))
        else:
            self.done.append(RunSpec.from_dict(spec).run_id)
            future.set_result("ran")
        return future


@pytest.mark.parametrize("die", [1, 2])
def test_runs_a_dead_worker_took_down_are_made_again_once_then_recorded(tmp_path, die):
    store = ResultStore(tmp_path)
    specs = [RunSpec("smallcnn/dense", "synth_shapes", n_shots=2, seed=s) for s in range(3)]
    done: list[str] = []
    _FakePool.pools = 0
    failures, outcomes = sweep._run_processes(specs, store, None, False,
                                              make_pool=lambda workers, threads: _FakePool(die, done))
    if die == 1:  # one broken pool: every run made in the next one, nothing recorded as failed
        assert sorted(done) == sorted(s.run_id for s in specs) and outcomes == ["ran"] * 3 and not failures
        assert not list(tmp_path.glob("*.error.json"))
    else:  # broken twice: recorded as failed, naming the likely cause and the fix, not retried for ever
        assert not done and _FakePool.pools == 2 and len(failures) == 3
        assert all("out-of-memory" in f["error"] and "VPCOST_WORKERS=1" in f["error"] for f in failures)
        assert sorted(p.name for p in tmp_path.glob("*.error.json")) == sorted(f"{s.run_id}.error.json" for s in specs)
