"""Grids of runs: build the specs, skip what is done, run the rest, collect failures.

``run_grid(specs, store)`` is what a notebook calls. Each run is isolated: a failure is written as
``<run_id>.error.json`` beside the records (spec, error type, message, traceback) and the sweep goes
on; at the end the failures are raised together unless ``on_error="record"``. Killing a sweep and
starting it again loses nothing and repeats nothing, because records are written atomically and
existing ones are skipped.

Runners: ``"serial"`` (this process; what papermill and CI use), ``"processes"`` (a pool of worker
processes on this machine, each with its share of the CPU threads: on a CPU, two single-threaded
runs side by side get more done than one run on two threads, because a small network's layers do
not keep two threads busy) and ``"submitit"`` (one cluster job per run through submitit's SLURM or
local executor; ``pip install submitit``): the runs are packed into at most ``MAX_JOBS`` chunks of
about equal cost, submitted as one job array, each chunk requeued on preemption. The runner never
changes a result's spec or run id.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write_bytes
from ..config import RunSpec
from ..errors import UnknownNameError, VpcostError
from ..grids import grid  # noqa: F401  (sweep.grid: the cartesian product, built in grids)
from .store import ResultStore

RUNNERS = ("serial", "processes", "submitit")
#: Cluster jobs a submitit sweep is packed into at most (admins ban one job per run of a 15k-run grid).
MAX_JOBS = 200


class SweepError(VpcostError):
    """Some runs of a sweep failed; each failure is recorded beside the results."""

    def __init__(self, failures: list[dict[str, Any]]):
        self.failures = failures
        lines = [f"  {f['run_id']} {f['spec']['model']} {f['spec']['dataset']}: {f['error']}" for f in failures[:10]]
        super().__init__(f"{len(failures)} run(s) failed; their errors are saved as <run_id>.error.json:\n"
                         + "\n".join(lines))


@dataclass
class SweepResult:
    """What a sweep did: how many runs were already there, ran now, or failed."""

    done_before: int = 0
    ran: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    by_other: int = 0  # finished meanwhile by another sweep over the same store

    def __str__(self) -> str:
        other = f", {self.by_other} by another writer" if self.by_other else ""
        return f"{self.done_before} already done, {self.ran} ran now{other}, {len(self.failures)} failed"


def pending(specs: Iterable[RunSpec], store: ResultStore) -> list[RunSpec]:
    """Specs without a record, duplicates removed, order kept."""
    seen: set[str] = set()
    todo = []
    for spec in specs:
        if spec.run_id not in seen and not store.has(spec):
            todo.append(spec)
        seen.add(spec.run_id)
    return todo


class WorkerDied(VpcostError):
    """A process-runner worker died (killed, most often for memory) while runs were in flight."""


def _record_failure(store: ResultStore, spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    failure = {"run_id": spec.run_id, "spec": spec.to_dict(), "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc()}
    atomic_write_bytes(store.root / f"{spec.run_id}.error.json", json.dumps(failure, indent=1).encode())
    return failure


def run_grid(specs: Sequence[RunSpec], store: ResultStore, *, runner: str = "serial", device: str | None = None,
             progress: bool = True, on_error: str = "raise", executor: Any = None,
             max_jobs: int = MAX_JOBS) -> SweepResult:
    """Run every spec that has no record yet; see the module docstring."""
    from tqdm.auto import tqdm

    from ..arithmetic import check_pin

    if runner not in RUNNERS:
        raise UnknownNameError("runner", runner, RUNNERS)
    if not str(device or "").startswith("cuda"):
        check_pin()  # an unknown or unrunnable arithmetic pin: refused before any run, nothing written
    todo = pending(specs, store)
    result = SweepResult(done_before=len({s.run_id for s in specs}) - len(todo))
    if runner == "submitit":
        result.failures = _run_submitit(todo, store, device, executor, max_jobs)
        result.ran = len(todo) - len(result.failures)
    elif runner == "processes":
        result.failures, outcomes = _run_processes(todo, store, device, progress)
        result.ran, result.by_other = outcomes.count("ran"), outcomes.count("by another writer")
    else:
        bar = tqdm(total=len(todo), desc="runs", disable=not progress or not todo)
        # First every run no other sweep holds; then the busy ones (another live sweep is training them), waiting
        # for that writer to finish (its record is then read) or to die (the run is then ours).
        queue, wait = todo, False
        while queue:
            busy = []
            for spec in queue:
                try:
                    outcome = _run_and_clear(spec, store, device, wait=wait)
                    if outcome == "busy":
                        busy.append(spec)
                        continue
                    result.ran += outcome == "ran"
                    result.by_other += outcome == "by another writer"
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # isolate the run; the sweep goes on (style habit 12)
                    result.failures.append(_record_failure(store, spec, exc))
                bar.update()
            queue, wait = busy, True
        bar.close()
    if result.failures and on_error == "raise":
        raise SweepError(result.failures)
    return result


def build_first(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """``specs`` reordered so that a model still to be built (a recovered model's first use) is built once.

    The pool hands out runs in order; two workers starting two runs of an unbuilt model would each build it
    (about 25 min on a core, the same file twice). So one run of each such model goes first and the model's
    other runs go last: one worker builds while the other trains on models that are ready.
    """
    from ..models import get_entry

    def unbuilt(model: str) -> bool:
        try:
            entry = get_entry(model)
        except VpcostError:
            return False
        return entry.unbuilt is not None and entry.unbuilt() is not None

    waiting = {model for model in {spec.model for spec in specs} if unbuilt(model)}  # one look per model
    first, ready, last, started = [], [], [], set()
    for spec in specs:
        if spec.model not in waiting:
            ready.append(spec)
        elif spec.model in started:
            last.append(spec)
        else:
            first.append(spec)
            started.add(spec.model)
    return first + ready + last


def process_workers() -> int:
    """Worker processes of the ``"processes"`` runner: ``VPCOST_WORKERS``, else one per two cores (at least 1)."""
    if "VPCOST_WORKERS" in os.environ:
        return max(1, int(os.environ["VPCOST_WORKERS"]))
    return max(1, (os.cpu_count() or 1) // 2) if (os.cpu_count() or 1) > 2 else (os.cpu_count() or 1)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_and_clear(spec: RunSpec, store: ResultStore, device: str | None, *, wait: bool = True) -> str:
    """One run into ``store`` under its writer lock: "ran", "by another writer" (its record appeared while we
    waited for the lock or before we took it), or "busy" (another live writer holds it and ``wait`` is False).
    A failure recorded by an earlier attempt is removed once the run succeeds."""
    from .runs import run

    lock = store.claim(spec.run_id, wait=wait)
    if lock is None:
        return "busy"
    try:
        if store.has(spec):
            return "by another writer"
        run(spec, store, device=device, progress=False)
        (store.root / f"{spec.run_id}.error.json").unlink(missing_ok=True)
        return "ran"
    finally:
        lock.release()


def _run_in_worker(spec: dict[str, Any], root: str, device: str | None, wait: bool = False) -> str:
    return _run_and_clear(RunSpec.from_dict(spec), ResultStore(root), device, wait=wait)


def _pool(workers: int, threads: int) -> Any:
    """The process runner's pool: spawned workers (a forked child would inherit the parent's torch thread pool and
    any CUDA state), a fresh one for every run (see ``_run_processes``)."""
    import concurrent.futures as cf
    import multiprocessing

    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                  initargs=(threads,), max_tasks_per_child=1)


def _run_processes(todo: list[RunSpec], store: ResultStore, device: str | None, progress: bool,
                   make_pool: Any = _pool) -> tuple[list[dict], list[str]]:
    """(failures, the outcome of every run that did not fail: "ran" or "by another writer").

    Every run gets a fresh worker process (``max_tasks_per_child=1``): runs keep the memory they free
    (``allocator.py``), so a worker that went on to a second run would hold the larger of both heaps and its
    fragments; two Lite0 runs at 224 px in long-lived workers outgrew 24 GB on 2026-12-08 (the kernel's OOM
    killer). A worker that dies breaks the whole pool; the runs it took down are made again in a new pool (from
    their mid-run checkpoints), once: a run that kills its worker again is recorded as failed, naming the likely
    cause and the fix."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    from tqdm.auto import tqdm

    if not todo:
        return [], []
    todo = build_first(todo)
    workers = min(process_workers(), len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    failures, outcomes = [], []
    bar = tqdm(total=len(todo), desc=f"runs ({workers} processes)", disable=not progress)
    queue, wait, pools_lost = todo, False, 0  # as the serial runner: free runs first, then wait for the busy ones
    while queue:
        busy, lost = [], []
        with make_pool(workers, threads) as pool:
            futures = {pool.submit(_run_in_worker, spec.to_dict(), str(store.root), device, wait): spec
                       for spec in queue}
            for future in cf.as_completed(futures):
                try:
                    outcome = future.result()
                    if outcome == "busy":
                        busy.append(futures[future])
                        continue
                    outcomes.append(outcome)
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                except Exception as exc:  # the worker's exception, with its traceback as the cause
                    failures.append(_record_failure(store, futures[future], exc))
                bar.update()
        if lost:
            pools_lost += 1
            if pools_lost > 1:  # the second time: recorded, not retried for ever
                for spec in lost:
                    failures.append(_record_failure(store, spec, WorkerDied(
                        f"a worker process died twice while runs were in flight ({workers} workers): the usual "
                        f"cause is the kernel's out-of-memory killer (`dmesg | grep -i memory`); run fewer at once "
                        f"(VPCOST_WORKERS=1) or free memory, then rerun: finished runs are skipped")))
                    bar.update()
                lost = []
        queue, wait = busy + lost, True
    bar.close()
    return failures, outcomes


def chunk_specs(specs: Sequence[RunSpec], max_jobs: int = MAX_JOBS) -> list[list[RunSpec]]:
    """Pack ``specs`` into at most ``max_jobs`` chunks of about equal estimated cost.

    Cost is the run's image passes (``plan.run_passes``); runs are dealt longest first to the
    currently lightest chunk (LPT scheduling), so no chunk waits on a pile of long runs.
    """
    from .plan import run_passes

    if max_jobs < 1:
        raise VpcostError(f"max_jobs must be >= 1, got {max_jobs}")
    chunks: list[list[RunSpec]] = [[] for _ in range(min(max_jobs, len(specs)))]
    loads = [0] * len(chunks)
    costs = {spec.run_id: run_passes(spec).total for spec in specs}
    for spec in sorted(specs, key=lambda s: -costs[s.run_id]):
        lightest = loads.index(min(loads))
        chunks[lightest].append(spec)
        loads[lightest] += costs[spec.run_id]
    return [c for c in chunks if c]


try:  # submitit is optional (the "sweep" extra); without it a chunk is a plain callable
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - exercised only where submitit is absent
    _Checkpointable = object


class ChunkJob(_Checkpointable):
    """One cluster job: the runs of a chunk, one after the other, each skipped when its record exists.

    On preemption or timeout submitit calls ``checkpoint`` and requeues the same chunk; the store
    makes the requeued job skip every run that finished, and the run that was in progress resumes from
    its last mid-run checkpoint in the store folder (``checkpoint.py``; at most ``VPCOST_CHECKPOINT_SECONDS``
    of its work is redone), so the store folder must be on a filesystem the requeued job sees. A job SLURM
    itself requeues (``scontrol requeue``, a node failure, preemption without the warning signal) is started
    again from the same pickle, with the same effect.

    Each step is printed to the job's log as ``vpcost <UTC time> <job> <event> <run id> ...``: what the job did
    is read from there (the SLURM tests count runs and measure the seconds an interruption cost from it).
    """

    def __init__(self, specs: list[dict[str, Any]], root: str, device: str | None):
        self.specs, self.root, self.device = specs, root, device
        self.current: str | None = None  # the run in progress, for checkpoint()'s log line

    def _log(self, event: str, run_id: str = "-", detail: str = "") -> None:
        from datetime import datetime, timezone

        from .slurm import job_label

        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        print(f"vpcost {stamp} {job_label() or 'local'} {event} {run_id} {detail}".rstrip(), flush=True)

    def __call__(self) -> list[dict[str, Any]]:
        import time

        store, failures = ResultStore(self.root), []
        self._log("chunk-start", detail=f"{len(self.specs)} runs")
        for d in self.specs:
            spec = RunSpec.from_dict(d)
            if store.has(spec):
                self._log("skip-done", spec.run_id)
                continue
            self.current, start = spec.run_id, time.monotonic()
            self._log("run-start", spec.run_id)
            try:
                outcome = _run_and_clear(spec, store, self.device)
                self._log(outcome.replace(" ", "-"), spec.run_id, f"{time.monotonic() - start:.2f}s")
            except Exception as exc:  # isolate the run; the chunk goes on
                failures.append(_record_failure(store, spec, exc))
                self._log("failed", spec.run_id, f"{type(exc).__name__}")
            self.current = None
        self._log("chunk-end", detail=f"{len(failures)} failed")
        return failures

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        from ..checkpoint import checkpoint_path

        if self.current is not None:  # the run the signal stopped: where its requeued job will resume it
            saved = checkpoint_path(self.root, self.current)
            epoch = _saved_epoch(saved)
            self._log("interrupted", self.current, f"checkpoint-epoch={epoch}")
        return DelayedSubmission(ChunkJob(self.specs, self.root, self.device))


def _saved_epoch(path: Any) -> int:
    """The epoch a mid-run checkpoint holds (0: none, the run restarts from its beginning)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["state"]["epoch"])
    except Exception:  # absent or half-written: the loop then starts from zero, as this says
        return 0


def _run_submitit(todo: list[RunSpec], store: ResultStore, device: str | None, executor: Any,
                  max_jobs: int = MAX_JOBS) -> list[dict]:
    try:
        import submitit
    except ImportError as exc:
        raise VpcostError("runner='submitit' needs submitit: pip install 'vpcost-utils[sweep]'") from exc
    from .slurm import SlurmConfigError, check_submission, slurm_parameters, submitit_folder

    if not todo:
        return []
    executor = executor or submitit.AutoExecutor(folder=str(submitit_folder(store)))
    params = slurm_parameters(executor)
    if params is not None:  # a real cluster: ask it first (controller, partition, time limit, array size)
        max_jobs = check_submission(params, todo, store, max_jobs)
    chunks = chunk_specs(todo, max_jobs)
    jobs = []
    try:
        with executor.batch():  # one SLURM job array
            for chunk in chunks:
                jobs.append((chunk, executor.submit(ChunkJob([s.to_dict() for s in chunk], str(store.root),
                                                             device))))
    except Exception as exc:  # sbatch refused: nothing was submitted, nothing in the store was touched
        said = "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())[-800:]
        raise SlurmConfigError(f"the cluster refused the job array ({type(exc).__name__}: {said}); nothing "
                               f"was submitted and the {len(todo)} pending "
                               f"runs are still pending, every record in {store.root} is kept: fix the option "
                               f"sbatch names and run the sweep again") from exc
    failures = []
    for chunk, job in jobs:
        try:
            failures.extend(job.result())
        except Exception as exc:  # the whole job died: its unfinished runs are failures
            failures.extend(_record_failure(store, spec, exc) for spec in chunk if not store.has(spec))
    return failures


def main(argv: list[str] | None = None) -> int:
    """``python -m vpcost_utils.running.sweep --profile paper --dry-run``: how a profile's runs are packed into jobs;
    ``--runner submitit --partition P --time-min T``: run them on SLURM (docs/slurm.md)."""
    import argparse
    from pathlib import Path

    from ..grids import profile_runs
    from .plan import run_passes

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--sections", nargs="+", default=None, help="notebook sections (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N runs (a slice, to try a cluster)")
    parser.add_argument("--max-jobs", type=int, default=MAX_JOBS)
    parser.add_argument("--dry-run", action="store_true", help="print the packing; submit nothing")
    parser.add_argument("--check", action="store_true", help="run the preflight on every run first (preflight.py)")
    parser.add_argument("--runner", choices=RUNNERS, default=None, help="run the runs (default: only print)")
    parser.add_argument("--store", default=None, help="the records' folder (default: outputs/<profile>/runs, "
                        "where the notebooks read them); on a cluster, a filesystem every node sees")
    parser.add_argument("--device", default=None)
    slurm = parser.add_argument_group("SLURM (--runner submitit; docs/slurm.md)")
    slurm.add_argument("--partition", default=None, help="sbatch --partition (default: the cluster's default)")
    slurm.add_argument("--time-min", type=int, default=None, help="sbatch --time in minutes (required)")
    slurm.add_argument("--cpus-per-task", type=int, default=None)
    slurm.add_argument("--mem-gb", type=float, default=None)
    slurm.add_argument("--gpus-per-node", type=int, default=None)
    slurm.add_argument("--gres", default=None, help="sbatch --gres, e.g. gpu:a100:1 (instead of --gpus-per-node)")
    slurm.add_argument("--signal-delay", type=int, default=None, help="seconds of warning (SIGUSR2) before the "
                       "time limit (default 90)")
    slurm.add_argument("--array-parallelism", type=int, default=None, help="array tasks running at once")
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--qos", default=None)
    args = parser.parse_args(argv)
    by_section = profile_runs(args.profile, args.sections)
    specs = [s for specs in by_section.values() for s in specs][:args.limit]
    if args.check:
        from .preflight import check

        try:
            check(specs)
        except VpcostError as exc:
            print(f"error: {exc}")
            return 2
    chunks = chunk_specs(specs, args.max_jobs)
    costs = [sum(run_passes(s).total for s in c) / 1e6 for c in chunks]
    print(f"{len(specs)} runs of the {args.profile} profile -> {len(chunks)} jobs (one job array); runs per job "
          f"{min(map(len, chunks))}-{max(map(len, chunks))}; million image passes per job "
          f"{min(costs):.2f}-{max(costs):.2f}")
    if args.dry_run or args.runner is None:
        if not args.dry_run:
            print("run them with --runner (serial, processes, or submitit on SLURM: docs/slurm.md)")
        return 0
    store = ResultStore(args.store or Path("outputs") / args.profile / "runs")
    executor = None
    if args.runner == "submitit":
        from .slurm import SIGNAL_DELAY_S, submitit_folder
        from .slurm import executor as slurm_executor

        if args.time_min is None:
            parser.error("--runner submitit needs --time-min: the sbatch time limit of each job, in minutes "
                         "(longer than the longest run; see docs/slurm.md)")
        try:
            executor = slurm_executor(submitit_folder(store), time_min=args.time_min, partition=args.partition,
                                      cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                                      gpus_per_node=args.gpus_per_node, gres=args.gres,
                                      signal_delay_s=args.signal_delay or SIGNAL_DELAY_S,
                                      array_parallelism=args.array_parallelism, account=args.account, qos=args.qos)
        except VpcostError as exc:
            print(f"error: {exc}")
            return 2
    try:
        result = run_grid(specs, store, runner=args.runner, device=args.device, executor=executor,
                          max_jobs=args.max_jobs, on_error="record")
    except VpcostError as exc:  # refused before submitting: the message names the option and the fix
        print(f"error: {exc}")
        return 2
    print(f"{store.root}: {result}")
    for failure in result.failures[:10]:
        print(f"  failed {failure['run_id']}: {failure['error']} (see {failure['run_id']}.error.json)")
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
