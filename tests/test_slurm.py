"""The submitit runner against a real SLURM controller (tests/slurm_cluster.py): arrays, failures, bad input,
``scontrol requeue`` and time limits, two arrays over one store.

Every test here submits through ``sbatch`` to slurmctld and reads job states back through submitit; the
runs are the smoke profile's model (the small CNN) on scikit-learn's digits, a few seconds each. They skip,
saying why, where the SLURM daemons are not installed or cannot start (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from vpcost_utils import checkpoint
from vpcost_utils.config import RunSpec
from vpcost_utils.grids import profile_runs
from vpcost_utils.running import slurm, sweep
from vpcost_utils.running.plan import run_passes
from vpcost_utils.running.store import ResultStore

submitit = pytest.importorskip("submitit")
pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
# What differs between an interrupted run's record and an uninterrupted one's by design: where and when it ran,
# and how it got there (resumed_at_epoch, checkpoint saves). Everything else must be equal.
PROVENANCE = ("env", "runtime")
EVENT = re.compile(r"^vpcost (\S+) (\S+) (\S+) (\S+) ?(.*)$")


@pytest.fixture
def on_cluster(slurm_cluster, monkeypatch):
    """This process and its jobs talk to the test cluster; jobs import this checkout and save at every epoch."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")  # sbatch exports the environment to the jobs
    return slurm_cluster


@pytest.fixture(scope="module")
def model_ready():
    """The smoke CNN built (pretrained once per machine) here, not by the first jobs at once."""
    from vpcost_utils.running.runs import execute

    execute(RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=1, eval_every=1), progress=False)


def smallest_smoke_runs(k: int) -> list[RunSpec]:
    """The ``k`` cheapest runs of the smoke grid on digits (by the planner's image passes)."""
    specs = [s for specs in profile_runs("smoke").values() for s in specs if s.task == "vp" and s.dataset == "digits"]
    return sorted(specs, key=lambda s: (run_passes(s).total, s.run_id))[:k]


def events(folder: Path) -> list[tuple[datetime, str, str, str, str]]:
    """(time, job, event, run id, detail) of every ChunkJob log line under a submitit folder, in time order."""
    out = []
    for log in folder.glob("*_log.out"):
        for line in log.read_text(errors="replace").splitlines():
            if m := EVENT.match(line):
                stamp, job, event, run_id, detail = m.groups()
                out.append((datetime.fromisoformat(stamp), job, event, run_id, detail))
    return sorted(out)


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in PROVENANCE}


def test_two_arrays_over_one_store_run_each_run_once_sized_to_the_cluster_and_keep_a_failure(
        on_cluster, model_ready, tmp_path):
    store = ResultStore(tmp_path / "runs")
    good = smallest_smoke_runs(6)
    bad = RunSpec("smallcnn/no-such-model", "digits", n_shots=2, epochs=1, eval_every=1)  # fails inside its job
    specs = [*good[:3], bad, *good[3:]]
    results: dict[str, sweep.SweepResult] = {}
    errors: list[BaseException] = []

    def one_sweep(name: str) -> None:
        try:
            executor = slurm.executor(tmp_path / name, time_min=10, signal_delay_s=60, cpus_per_task=1,
                                      partition="debug")
            results[name] = sweep.run_grid(specs, store, runner="submitit", executor=executor, on_error="record",
                                           progress=False)
        except BaseException as exc:  # surfaced in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=one_sweep, args=(name,)) for name in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for name in ("first", "second"):
        # 7 runs and max_jobs=200, but the cluster's MaxArraySize is 4: one array of 4 tasks, not 7 jobs
        script = next((tmp_path / name).glob("*_submission.sh")).read_text()
        assert f"#SBATCH --array=0-{slurm_cluster_max_array() - 1}%" in script
        assert "#SBATCH --partition=debug" in script and "#SBATCH --time=10" in script
        assert "#SBATCH --signal=USR2@60" in script
        assert len(list((tmp_path / name).glob("*_submission.sh"))) == 1
        assert [f["run_id"] for f in results[name].failures] == [bad.run_id]  # recorded; the array went on
    assert all(store.has(s) for s in good) and not store.path(bad.run_id).exists()
    assert "no-such-model" in (store.root / f"{bad.run_id}.error.json").read_text()
    ran = [e for name in ("first", "second") for e in events(tmp_path / name) if e[2] == "ran"]
    assert sorted(e[3] for e in ran) == sorted(s.run_id for s in good)  # each run trained once, by one array
    jobs = {e[1] for name in ("first", "second") for e in events(tmp_path / name)}
    assert len(jobs) == 2 * slurm_cluster_max_array()
    again = sweep.run_grid(specs, store, runner="submitit", executor=slurm.executor(
        tmp_path / "third", time_min=10, partition="debug"), on_error="record", progress=False)
    assert again.done_before == 6 and [f["run_id"] for f in again.failures] == [bad.run_id]


def slurm_cluster_max_array() -> int:
    from slurm_cluster import MAX_ARRAY_SIZE

    return MAX_ARRAY_SIZE


def test_bad_input_is_refused_before_submitting_and_keeps_the_store(on_cluster, model_ready, tmp_path, monkeypatch,
                                                                    capsys):
    store = ResultStore(tmp_path / "runs")
    done = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=2, eval_every=2)
    from vpcost_utils.running.runs import run

    run(done, store, progress=False)  # a measured run: seconds per image pass of smallcnn
    before = store.path(done.run_id).read_bytes()
    long_run = RunSpec("smallcnn/dense", "digits", n_shots=None, epochs=4000, eval_every=4000)  # about 70 min
    short = [RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=1, eval_every=1, seed=1)]

    def refused(specs, match, **options) -> str:
        ex = slurm.executor(tmp_path / "submitit", **{"time_min": 10, "partition": "debug", **options})
        with pytest.raises(slurm.SlurmConfigError, match=match) as info:
            sweep.run_grid(specs, store, runner="submitit", executor=ex, progress=False)
        return str(info.value)

    message = refused(short, r"slurm_partition='gpu' \(--partition\) is not a partition", partition="gpu")
    assert "pass one of: debug" in message
    refused(short, r"timeout_min=61 \(--time-min\) is over the MaxTime of partition 'debug', 60 min", time_min=61)
    refused(short, r"slurm_signal_delay_s=600", signal_delay_s=600)
    # the measured cost: 4000 epochs of all of digits (seconds per pass of the run above), against 10 minutes
    message = refused([long_run], r"timeout_min=10 \(--time-min\) leaves", time_min=10, signal_delay_s=90)
    need = int(re.search(r"pass timeout_min >= (\d+)", message).group(1))
    assert need > 10 and long_run.run_id in message
    # sbatch itself refusing (more memory than the node has) after the checks passed: said, nothing submitted
    refused(short, r"refused the job array .*Memory specification.*nothing was submitted", mem_gb=100_000)
    # the controller unreachable: a slurm.conf naming a port nobody listens on
    bad_conf = tmp_path / "unreachable.conf"
    bad_conf.write_text(re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=1", on_cluster.conf.read_text()))
    monkeypatch.setenv("SLURM_CONF", str(bad_conf))
    refused(short, r"controller does not answer .* SLURM_CONF")
    assert sweep.main(["--profile", "smoke", "--limit", "1", "--runner", "submitit", "--time-min", "5",
                       "--store", str(store.root)]) == 2
    assert "SLURM_CONF" in capsys.readouterr().out
    monkeypatch.setenv("SLURM_CONF", str(on_cluster.conf))
    with pytest.raises(SystemExit):  # --time-min is required: submitit's 5-minute default is no one's choice
        sweep.main(["--profile", "smoke", "--limit", "1", "--runner", "submitit", "--store", str(store.root)])
    assert store.path(done.run_id).read_bytes() == before and len(list(store.root.glob("*.json"))) == 1
    assert not list(tmp_path.glob("submitit/*_submitted.pkl"))  # nothing reached sbatch but the mem_gb array


def _job_ids(name: str, cluster) -> list[str]:
    out = cluster.run("squeue", "--noheader", "--array", f"--name={name}", "--format=%i", check=False).stdout
    return out.split()


def _wait(what: str, ok, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_requeue_and_time_limit_resume_mid_run_to_the_uninterrupted_record(on_cluster, model_ready, tmp_path):
    # A: requeued with `scontrol requeue` once its mid-run checkpoint holds epoch 3 or later. B: its time limit
    # cut, once its checkpoint holds epoch 2, to 1-2 minutes more than the job has run (`scontrol update
    # TimeLimit=`, as a site's admin does), so that SLURM's own warning signal (SIGUSR2, 90 s ahead; SLURM's
    # time checks run every 30 s) reaches it mid-run whatever this machine's load; the limit is set back to 10
    # minutes while the requeued job waits, so that it is stopped once. Both jobs: one run each, 10 minutes.
    a = RunSpec("smallcnn/dense", "digits", n_shots=10, epochs=120, eval_every=30, seed=11)  # ~35 s idle: > KillWait
    b = RunSpec("smallcnn/dense", "digits", n_shots=10, epochs=600, eval_every=200, seed=21)  # ~3 min idle
    store = ResultStore(tmp_path / "runs")
    results: dict[str, sweep.SweepResult] = {}
    errors: list[BaseException] = []

    def one_sweep(name: str, spec: RunSpec) -> None:
        try:
            ex = slurm.executor(tmp_path / name, time_min=10, signal_delay_s=90, cpus_per_task=1, partition="debug")
            ex.update_parameters(name=name)
            results[name] = sweep.run_grid([spec], store, runner="submitit", executor=ex, on_error="record",
                                           progress=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_sweep, args=("requeue", a)),
               threading.Thread(target=one_sweep, args=("timelimit", b))]
    for t in threads:
        t.start()
    saved_a, saved_b = (checkpoint.checkpoint_path(store.root, s.run_id) for s in (a, b))
    _wait("run A's checkpoint at epoch 3", lambda: sweep._saved_epoch(saved_a) >= 3, 300)
    requeued_at_epoch = sweep._saved_epoch(saved_a)
    [job_a] = _job_ids("requeue", on_cluster)
    requeued_at = datetime.now().astimezone()
    on_cluster.run("scontrol", "requeue", job_a)
    _wait("run B's checkpoint at epoch 2", lambda: sweep._saved_epoch(saved_b) >= 2, 300)
    [job_b] = _job_ids("timelimit", on_cluster)
    ran_for = slurm.parse_seconds(on_cluster.run("squeue", "--noheader", f"--jobs={job_b}", "--format=%M").stdout)
    # 60-120 s left: SLURM sends the signal at its next time check (within 30 s) once the time left is under the
    # signal's 90 s plus its 30-s check period, and the limit itself is still a minute or more away
    on_cluster.run("scontrol", "update", f"JobId={job_b}", f"TimeLimit={(ran_for + 120) // 60}")
    _wait("the warning signal to stop run B",
          lambda: any(e[2] == "interrupted" for e in events(tmp_path / "timelimit")), 120)
    on_cluster.run("scontrol", "update", f"JobId={job_b}", "TimeLimit=10")

    # meanwhile, the uninterrupted references, in this process and in a store of their own
    from vpcost_utils.running.runs import run

    reference_store = ResultStore(tmp_path / "reference")
    for spec in (a, b):
        run(spec, reference_store, progress=False)
    reference = {spec.run_id: reference_store.read(spec.run_id) for spec in (a, b)}  # as JSON, like the others
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert all(not r.failures for r in results.values()), results

    for spec in (a, b):  # the same record as the uninterrupted run, but for where, when and how it ran
        assert comparable(store.read(spec.run_id)) == comparable(reference[spec.run_id]), spec.run_id
    # A: started twice, resumed from a mid-run checkpoint at least as late as the one it was requeued at (the
    # job trains on for KillWait seconds after SIGTERM, which submitit ignores, and may save again)
    log_a = events(tmp_path / "requeue")
    assert [e[2] for e in log_a].count("chunk-start") == 2 and [e[2] for e in log_a].count("ran") == 1
    resumed_a = store.read(a.run_id)["runtime"]["resumed_at_epoch"]
    assert resumed_a >= requeued_at_epoch >= 3
    # B: stopped once by the warning signal, mid-run, and resumed exactly where its checkpoint was
    log_b = events(tmp_path / "timelimit")
    [stop] = [e for e in log_b if e[2] == "interrupted"]
    stopped_at_epoch = int(stop[4].split("=")[1])
    assert stopped_at_epoch >= 2 and store.read(b.run_id)["runtime"]["resumed_at_epoch"] == stopped_at_epoch
    assert [e[2] for e in log_b].count("chunk-start") == 2 and [e[2] for e in log_b].count("ran") == 1
    assert "timed-out" in "".join(p.read_text() for p in (tmp_path / "timelimit").glob("*_log.err"))

    # seconds lost per interruption: the run's span from its first start to its record, less the same run
    # uninterrupted (the reference's wall time); and the part of it the job spent off the node
    def lost(log, spec: RunSpec) -> float:
        first = next(e[0] for e in log if e[3] == spec.run_id and e[2] == "run-start")
        end = next(e[0] for e in log if e[3] == spec.run_id and e[2] == "ran")
        return (end - first).total_seconds() - reference[spec.run_id]["env"]["wall_time_s"]

    restart_a = [e[0] for e in log_a if e[2] == "chunk-start"][1]
    restart_b = [e[0] for e in log_b if e[2] == "chunk-start"][1]
    print(f"\nscontrol requeue: run {a.run_id} requeued at epoch {requeued_at_epoch}, resumed at epoch {resumed_a}; "
          f"{lost(log_a, a):.1f} s lost, {(restart_a - requeued_at).total_seconds():.1f} s of them from the requeue "
          f"to the job running again")
    print(f"time limit: run {b.run_id} stopped at epoch {stopped_at_epoch}; {lost(log_b, b):.1f} s lost, "
          f"{(restart_b - stop[0]).total_seconds():.1f} s of them from the signal to the job running again")
    shutil.rmtree(tmp_path / "reference")
