"""The submitit runner with submitit's local executor (real subprocesses): chunks, job arrays, requeue."""

from __future__ import annotations

import pytest

from vpcost_utils.config import RunSpec
from vpcost_utils.running import sweep
from vpcost_utils.running.store import ResultStore

submitit = pytest.importorskip("submitit")


def _specs(n: int) -> list[RunSpec]:
    return sweep.grid(model="smallcnn/dense", dataset="digits", n_shots=2, epochs=1, eval_every=1,
                      seed=list(range(n)))


def test_chunks_are_few_balanced_and_cover_every_run_once():
    specs = [RunSpec("m/x", "cifar10", n_shots=n, epochs=10, seed=s) for n in (1, 10, 100) for s in range(20)]
    chunks = sweep.chunk_specs(specs, max_jobs=7)
    assert len(chunks) == 7
    assert sorted(s.run_id for c in chunks for s in c) == sorted(s.run_id for s in specs)
    from vpcost_utils.running.plan import run_passes

    loads = [sum(run_passes(s).total for s in c) for c in chunks]
    assert max(loads) - min(loads) <= max(run_passes(s).total for s in specs)  # LPT: within one run of each other
    assert len(sweep.chunk_specs(specs[:3], max_jobs=200)) == 3


def test_local_executor_writes_every_record_once_in_few_jobs(tmp_path):
    store = ResultStore(tmp_path / "runs")
    executor = submitit.LocalExecutor(folder=str(tmp_path / "submitit"))
    executor.update_parameters(timeout_min=10)
    specs = _specs(4)
    result = sweep.run_grid(specs, store, runner="submitit", executor=executor, max_jobs=2, progress=False)
    assert (result.ran, result.failures) == (4, [])
    assert all(store.has(s) for s in specs)
    assert len(list((tmp_path / "submitit").glob("*_submitted.pkl"))) == 2  # 4 runs, 2 jobs
    again = sweep.run_grid(specs, store, runner="submitit", executor=executor, max_jobs=2, progress=False)
    assert again.ran == 0 and again.done_before == 4


def test_a_requeued_chunk_redoes_only_the_unfinished_runs(tmp_path):
    store = ResultStore(tmp_path / "runs")
    specs = _specs(3)
    job = sweep.ChunkJob([s.to_dict() for s in specs], str(store.root), None)
    from vpcost_utils.running.runs import run

    run(specs[0], store, progress=False)  # finished before the job was preempted
    first = (store.root / f"{specs[0].run_id}.json").stat().st_mtime_ns
    requeued = job.checkpoint()  # what submitit calls on preemption
    assert requeued.function(*requeued.args, **requeued.kwargs) == []
    assert all(store.has(s) for s in specs)
    assert (store.root / f"{specs[0].run_id}.json").stat().st_mtime_ns == first  # not redone


def test_dry_run_packs_the_paper_grid_into_a_few_hundred_jobs(capsys):
    assert sweep.main(["--profile", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    runs, jobs = (int(x) for x in __import__("re").search(r"(\d+) runs .* -> (\d+) jobs", out).groups())
    assert runs > 10_000 and jobs <= sweep.MAX_JOBS
