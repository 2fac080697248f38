"""A SLURM cluster as the submitit runner sees it: the executor we build, and the checks made before submitting.

``executor(folder, partition=..., time_min=...)`` is a ``submitit.AutoExecutor`` pinned to SLURM with the
options docs/slurm.md lists. ``check_submission(params, specs, store)`` asks the controller, before anything
is submitted, what a failed ``sbatch`` (or worse, an array that pends forever) would otherwise say too late:

- the controller answers (``scontrol ping``); if not, the error names ``SLURM_CONF`` and ``slurmctld``;
- the partition exists and is up, and the time limit fits its ``MaxTime`` (a job over it pends for ever as
  ``PartitionTimeLimit`` on a cluster that does not enforce partition limits at submission);
- the time limit, less submitit's warning signal, is longer than the longest pending run's measured cost:
  seconds per image pass of finished runs of the same architecture in the store (``env.wall_time_s`` over
  ``plan.run_passes``), times that run's passes. A run that cannot finish inside one job would be stopped,
  requeued and resumed until submitit's timeout budget is spent. Where the store holds no finished run of an
  architecture there is nothing measured, and the check says so instead of guessing;
- the array fits the cluster's ``MaxArraySize`` (the chunk count is lowered to it, never an error).

Every refusal is a ``SlurmConfigError`` naming the option to change and how; nothing is written to the store
before the checks pass, and a failed ``sbatch`` leaves the store as it was.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunSpec
from ..errors import VpcostError
from .store import ResultStore

#: submitit's own default lead of its warning signal (SIGUSR2) before the time limit, in seconds.
SIGNAL_DELAY_S = 90
#: What a job spends before its first run trains (Python, torch and submitit imports): 6-9 s on the test cluster
#: (2 busy cores). A slower start only makes the check miss a borderline limit, which requeues then absorb.
STARTUP_S = 15


class SlurmConfigError(VpcostError):
    """A SLURM submission refused before it was made; the message names the option and the fix."""


@dataclass(frozen=True)
class Cluster:
    """What the controller says about itself: partitions (name -> (up, MaxTime in minutes or None)) and limits."""

    partitions: dict[str, tuple[bool, int | None]]
    default_partition: str | None
    max_array_size: int


def _client(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise SlurmConfigError(f"{cmd[0]} is not on PATH: submit from a machine with the SLURM client commands "
                               f"(a login node), or install them (Debian: apt-get install slurm-client)")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmConfigError(f"`{' '.join(cmd)}` did not answer in {timeout:.0f} s: the SLURM controller is "
                               f"unreachable; check that slurmctld runs and that SLURM_CONF "
                               f"({os.environ.get('SLURM_CONF', 'unset')}) names it") from None


def parse_seconds(value: str) -> int | None:
    """A SLURM time in seconds; None: unlimited. SLURM's forms: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``,
    ``D-H:M:S`` (``MaxTime`` prints ``1:00:00``, squeue's elapsed time ``0:42``)."""
    value = value.strip()
    if value.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        h, m, s = (parts + [0, 0])[:3]
    else:  # M, M:S, H:M:S
        h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def parse_minutes(value: str) -> int | None:
    """A SLURM time in whole minutes, rounded up; None: unlimited (``parse_seconds``)."""
    seconds = parse_seconds(value)
    return None if seconds is None else math.ceil(seconds / 60)


def _fields(text: str) -> dict[str, str]:
    """``Key=Value Key2=Value2`` as scontrol prints them (values here have no spaces)."""
    out = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def cluster() -> Cluster:
    """Ask the controller; SlurmConfigError where it does not answer."""
    ping = _client("scontrol", "ping")
    if ping.returncode != 0 or "DOWN" in ping.stdout:
        said = (ping.stdout + ping.stderr).strip().splitlines()
        raise SlurmConfigError(f"the SLURM controller does not answer (scontrol ping: {said[-1] if said else '?'}): "
                               f"start slurmctld, or set SLURM_CONF to the cluster's slurm.conf "
                               f"(now {os.environ.get('SLURM_CONF', 'unset: /etc/slurm/slurm.conf')}), and submit "
                               f"from a node that reaches it")
    shown = _client("scontrol", "--oneliner", "show", "partition")
    partitions: dict[str, tuple[bool, int | None]] = {}
    default = None
    for line in shown.stdout.splitlines():
        f = _fields(line)
        if "PartitionName" not in f:
            continue
        partitions[f["PartitionName"]] = (f.get("State") == "UP", parse_minutes(f.get("MaxTime", "UNLIMITED")))
        if f.get("Default") == "YES":
            default = f["PartitionName"]
    config = _client("scontrol", "show", "config")
    max_array = 1001  # SLURM's default
    for line in config.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize":
            max_array = int(value.strip())
    return Cluster(partitions, default, max_array)


def seconds_per_pass(store: ResultStore, newest: int = 200) -> dict[str, float]:
    """Measured seconds per image pass by architecture, from the store's ``newest`` finished, unresumed records.

    A run's wall time holds a fixed part (the model and data load) beside its passes, which inflates the rate of
    small runs; so per architecture only the larger half of the runs (by passes) count, and their median is
    taken. Only the newest records are read: a store of the paper grid holds thousands, each with its logits.
    """
    from .plan import arch_of, run_passes

    paths = [p for p in store.root.glob("*.json") if not p.name.endswith(".error.json")]
    paths = sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)[:newest]
    measured: dict[str, list[tuple[int, float]]] = {}
    for path in paths:
        try:
            record = json.loads(path.read_text())
            wall = record.get("env", {}).get("wall_time_s")
            if not wall or record.get("runtime", {}).get("resumed_at_epoch"):
                continue  # a resumed run's wall time is only its last part
            spec = RunSpec.from_dict(record["spec"])
            passes = run_passes(spec).total
        except (OSError, ValueError, VpcostError, KeyError, TypeError):
            continue  # a record being replaced, or of an older layout: not a measurement
        if passes:
            measured.setdefault(arch_of(spec.model), []).append((passes, wall))
    rates = {}
    for arch, runs in measured.items():
        runs.sort()
        larger = runs[len(runs) // 2:]
        rates[arch] = statistics.median(wall / passes for passes, wall in larger)
    return rates


def longest_run(specs: Sequence[RunSpec], store: ResultStore) -> tuple[RunSpec, float] | None:
    """The pending run with the largest measured cost and that cost in seconds; None where nothing is measured."""
    from .plan import arch_of, run_passes

    rates = seconds_per_pass(store)
    costs = [(spec, run_passes(spec).total * rates[arch_of(spec.model)]) for spec in specs
             if arch_of(spec.model) in rates]
    return max(costs, key=lambda c: c[1]) if costs else None


def slurm_parameters(executor: Any) -> dict[str, Any] | None:
    """The sbatch parameters of a submitit SLURM executor (``AutoExecutor(cluster="slurm")`` or ``SlurmExecutor``);
    None for any other executor (local, debug), which the checks leave alone."""
    inner = getattr(executor, "_executor", executor)
    if type(inner).__name__ != "SlurmExecutor":
        return None
    return dict(inner.parameters)


def check_submission(params: dict[str, Any], specs: Sequence[RunSpec], store: ResultStore,
                     max_jobs: int) -> int:
    """Refuse a submission SLURM would reject or never run (see the module docstring); returns the chunk count
    the array may have on this cluster (``max_jobs`` lowered to ``MaxArraySize``)."""
    info = cluster()
    partition = params.get("partition") or info.default_partition
    if partition is None:
        raise SlurmConfigError(f"the cluster has no default partition: pass slurm_partition= (--partition), one of "
                               f"{', '.join(sorted(info.partitions)) or 'none listed by scontrol'}")
    if partition not in info.partitions:
        raise SlurmConfigError(f"slurm_partition={partition!r} (--partition) is not a partition of this cluster; "
                               f"pass one of: {', '.join(sorted(info.partitions))} (sinfo lists them)")
    up, max_time = info.partitions[partition]
    if not up:
        raise SlurmConfigError(f"partition {partition!r} is not UP (scontrol show partition {partition}): pick "
                               f"another with slurm_partition= (--partition), or ask the admins when it reopens")
    time_min = int(params.get("time", 5))
    if max_time is not None and time_min > max_time:
        raise SlurmConfigError(f"timeout_min={time_min} (--time-min) is over the MaxTime of partition "
                               f"{partition!r}, {max_time} min: the array would pend for ever; pass timeout_min <= "
                               f"{max_time}, or a partition that allows longer jobs")
    delay = int(params.get("signal_delay_s", SIGNAL_DELAY_S))
    if delay >= time_min * 60:
        raise SlurmConfigError(f"slurm_signal_delay_s={delay} (--signal-delay) is not shorter than the time limit "
                               f"({time_min * 60} s): every job would be told to stop as it starts; pass a delay of "
                               f"at most a quarter of the limit, e.g. {time_min * 15}")
    usable = time_min * 60 - delay - STARTUP_S
    longest = longest_run(specs, store)
    if longest is not None and longest[1] > usable:
        spec, cost = longest
        need = math.ceil((cost + delay + STARTUP_S) / 60)
        raise SlurmConfigError(
            f"timeout_min={time_min} (--time-min) leaves {max(usable, 0)} s for runs ({time_min * 60} s less "
            f"{delay} s of warning signal and {STARTUP_S} s of job start), shorter than run {spec.run_id} "
            f"({spec.model} on {spec.dataset}), measured at about {cost:.0f} s from the finished runs of "
            f"{spec.model.split('/')[0]} in {store.root}: pass timeout_min >= {need}"
            + (f" (partition {partition!r} allows up to {max_time})" if max_time is not None else ""))
    return max(1, min(max_jobs, info.max_array_size))


def executor(folder: str | os.PathLike, *, time_min: int, partition: str | None = None,
             cpus_per_task: int | None = None, mem_gb: float | None = None, gpus_per_node: int | None = None,
             gres: str | None = None, signal_delay_s: int = SIGNAL_DELAY_S, array_parallelism: int | None = None,
             account: str | None = None, qos: str | None = None, extra: dict[str, Any] | None = None,
             max_num_timeout: int = 3) -> Any:
    """A ``submitit.AutoExecutor`` for SLURM with the options docs/slurm.md describes (None: the site's default).

    ``gres`` is passed as is (``gpu:a100:1``) for sites that name GPUs by type; ``gpus_per_node`` is the portable
    form. ``extra`` sets any other sbatch option (``{"constraint": "avx2"}``). ``max_num_timeout``: how many
    time-limit stops a job may be requeued after (submitit's default 3; preemptions do not count), each resuming
    its run from the last mid-run checkpoint.
    """
    try:
        import submitit
    except ImportError as exc:
        raise VpcostError("the SLURM runner needs submitit: pip install 'vpcost-utils[sweep]'") from exc

    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm", slurm_max_num_timeout=max_num_timeout)
    params: dict[str, Any] = {"timeout_min": time_min, "slurm_signal_delay_s": signal_delay_s,
                              "name": "vpcost"}
    for key, value in (("slurm_partition", partition), ("cpus_per_task", cpus_per_task), ("mem_gb", mem_gb),
                       ("gpus_per_node", gpus_per_node), ("slurm_gres", gres),
                       ("slurm_array_parallelism", array_parallelism), ("slurm_account", account),
                       ("slurm_qos", qos), ("slurm_additional_parameters", extra)):
        if value is not None:
            params[key] = value
    ex.update_parameters(**params)
    return ex


def job_label() -> str | None:
    """``<array job>_<task>`` (or the job id) of the SLURM job this process runs in; None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def submitit_folder(store: ResultStore) -> Path:
    """Where a sweep's submitit files go by default: beside the store, on the same (shared) filesystem."""
    return store.root.parent / "submitit"
