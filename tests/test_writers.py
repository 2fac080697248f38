"""One writer per run: two sweeps over one store split the runs, and a dead writer's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from vpcost_utils.config import RunSpec
from vpcost_utils.running.store import ResultStore

SWEEP = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from vpcost_utils import runs, sweep
    from vpcost_utils.arithmetic import arithmetic_block
    from vpcost_utils.config import PROTOCOL
    from vpcost_utils.running.store import ResultStore

    root, log, go, runner = sys.argv[1:5]

    def execute(spec, *, device=None, progress=True, checkpoint=None):  # a slow fake run that logs who ran it
        with open(log, "a") as f:
            f.write(f"{spec.run_id} {os.getpid()}\\n")
        time.sleep(0.4)
        return {"run_id": spec.run_id, "protocol": PROTOCOL, "arithmetic": arithmetic_block(1),
                "spec": spec.to_dict(), "metrics": {"acc": 1.0}, "env": {"wall_time_s": 0.4}}

    runs.execute = execute
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.02)
    specs = sweep.grid(model="a/x", dataset="d", seed=list(range(8)))
    result = sweep.run_grid(specs, ResultStore(root), runner=runner, progress=False)
    print(result, flush=True)
""")


def _start(script, *args):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE, text=True)


def test_two_concurrent_sweeps_run_each_run_once(tmp_path):
    script, log, go = tmp_path / "sweep_script.py", tmp_path / "log.txt", tmp_path / "go"
    script.write_text(SWEEP)
    procs = [_start(script, tmp_path / "runs", log, go, "serial") for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    lines = log.read_text().split()
    run_ids, pids = lines[::2], lines[1::2]
    assert len(run_ids) == 8 and len(set(run_ids)) == 8  # every run trained exactly once
    assert len(set(pids)) == 2  # and the two sweeps shared the work
    store = ResultStore(tmp_path / "runs")
    specs = [RunSpec("a/x", "d", seed=s) for s in range(8)]
    assert all(store.has(s) for s in specs)


def test_a_dead_writers_lock_is_taken_over_at_once(tmp_path):
    store = ResultStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from vpcost_utils.running.store import ResultStore
        lock = ResultStore({str(tmp_path)!r}).claim("abc")
        print("held" if lock else "not held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.claim("abc") is None  # a live writer holds it
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        start = time.time()
        lock = store.claim("abc")
        assert lock is not None and time.time() - start < 1.0
        lock.release()
    finally:
        holder.kill()


def test_the_process_runner_waits_for_a_busy_run_and_takes_it_over(tmp_path, monkeypatch):
    import concurrent.futures as cf

    from vpcost_utils.arithmetic import arithmetic_block
    from vpcost_utils.config import PROTOCOL
    from vpcost_utils.running import runs, sweep

    class InProcessPool(cf.ThreadPoolExecutor):  # the pool's logic, in threads, so the fake run below applies
        def __init__(self, workers, mp_context=None, initializer=None, initargs=(), max_tasks_per_child=None):
            super().__init__(workers)

    ran = []

    def execute(spec, *, device=None, progress=True, checkpoint=None):
        ran.append((spec.seed, time.time()))
        return {"run_id": spec.run_id, "protocol": PROTOCOL, "arithmetic": arithmetic_block(1),
                "spec": spec.to_dict(), "metrics": {"acc": 1.0}, "env": {"wall_time_s": 0.0}}

    monkeypatch.setattr(cf, "ProcessPoolExecutor", InProcessPool)
    monkeypatch.setattr(runs, "execute", execute)
    specs = [RunSpec("a/x", "d", seed=s) for s in range(3)]
    store = ResultStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from vpcost_utils.running.store import ResultStore
        lock = ResultStore({str(tmp_path)!r}).claim({specs[1].run_id!r})
        print("held", flush=True)
        time.sleep(1.5)  # then dies without writing a record
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    held_at = time.time()
    result = sweep.run_grid(specs, store, runner="processes", progress=False)
    holder.wait(timeout=10)
    assert result.ran == 3 and result.by_other == 0 and all(store.has(s) for s in specs)
    again = sweep.run_grid(specs, store, runner="processes", progress=False)
    assert (again.done_before, again.ran) == (3, 0)
    seeds = [seed for seed, _ in ran]
    assert sorted(seeds) == [0, 1, 2] and seeds[-1] == 1  # the busy run came last, once its holder was gone
    assert ran[-1][1] - held_at > 1.2 > ran[0][1] - held_at  # it waited for the holder; the free runs did not
