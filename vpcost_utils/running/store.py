"""One JSON record per run, written atomically; loaded back as a pandas table.

A record is ``{"run_id", "spec", "metrics", "curves", "mapping", ..., "env"}``; its file is
``<root>/<run_id>.json``. Writes go to a temporary file in the same folder and are renamed into
place, so a killed run leaves either the old state or the complete record, never half a file.
Large arrays (saved prompts) go to a sibling ``<run_id>.prompts.pt``, written the same way.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_torch_save, atomic_write_bytes
from ..arithmetic import arithmetic_key, run_threads
from ..config import PROTOCOL, RunSpec


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a class with no test sample reads back as null
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value


class ResultStore:
    """The folder of run records for one profile (``outputs/<profile>/runs``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def has(self, spec: RunSpec) -> bool:
        """A record of ``spec`` exists and was made under this protocol and thread count (not ``stale``)."""
        return self.path(spec.run_id).exists() and self.stale(spec) is None

    def stale(self, spec: RunSpec) -> str | None:
        """Why the record of ``spec`` may not be reused, or None (also when there is none).

        A record made by another protocol version (``config.PROTOCOL``), on another number of threads per
        run or, for a CPU run, on a CPU with another kernel set (``arithmetic.py``) would give other numbers
        if run now: it is made again, never reused silently. An unreadable record is stale too.
        """
        path = self.path(spec.run_id)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return f"its record {path.name} is unreadable ({exc})"
        protocol = record.get("protocol", 1)
        if protocol != PROTOCOL:
            return f"its record was made under protocol {protocol}, this code computes protocol {PROTOCOL}"
        arithmetic = record.get("arithmetic", {})
        threads = arithmetic.get("threads")
        if threads != run_threads():
            return f"its record was made on {threads} thread(s) per run, this process runs on {run_threads()}"
        if not arithmetic.get("cuda_deterministic") and arithmetic.get("key") != arithmetic_key():
            made = arithmetic.get("key") or "before arithmetic pins (it names no pin or processor)"
            return f"its record's arithmetic is {made}, this process computes {arithmetic_key()} (arithmetic.py)"
        return None

    def write(self, record: dict[str, Any]) -> Path:
        """Write a record (and its saved prompts, if any) atomically; returns the JSON path."""
        record = dict(record)
        prompts = record.pop("_prompts", None)
        if prompts:
            atomic_torch_save(prompts, self.root / f"{record['run_id']}.prompts.pt")
        path = self.path(record["run_id"])
        atomic_write_bytes(path, json.dumps(_jsonable(record), indent=1, sort_keys=True).encode())
        return path

    def claim(self, run_id: str, *, wait: bool = False) -> Any:
        """The run's writer lock, acquired, or None when another live process holds it (``wait=False``).

        One writer per run: two sweeps over one store split the runs instead of both training each one.
        ``filelock.FileLock`` is an OS lock (``flock``) on ``<root>/.locks/<run_id>.lock``: the kernel releases
        it when its holder dies, however it dies, so a crashed writer's runs are taken over at once (the
        stale-lock rule); on NFS the client maps it to an NFS lock, released when the dead client's lease
        expires (90 s by default). Release it with ``.release()``; the lock file stays (deleting it would race
        a waiter).
        """
        from filelock import FileLock, Timeout

        folder = self.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / f"{run_id}.lock", timeout=-1 if wait else 0, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            return None
        return lock

    def read(self, run_id: str) -> dict[str, Any]:
        return json.loads(self.path(run_id).read_text())

    def prompts(self, run_id: str) -> dict[int, torch.Tensor]:
        """Prompt frames saved during a run (``RunSpec.save_prompts``), keyed by epoch."""
        path = self.root / f"{run_id}.prompts.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}

    def records(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.root.glob("*.json")):
            yield json.loads(path.read_text())

    def table(self, records: Iterable[dict[str, Any]] | None = None) -> Any:
        """One row per run: the spec's fields, the scalar metrics, and provenance columns. ``records``: already
        read ones (from ``records()``), so a caller that needs both reads each file once."""
        import pandas as pd

        rows = []
        for rec in self.records() if records is None else records:
            row: dict[str, Any] = {"run_id": rec["run_id"], **rec["spec"]}
            row.update({k: v for k, v in rec["metrics"].items() if not isinstance(v, (list, dict))})
            model = rec.get("model", {})
            row["substitute"] = bool(model.get("substitute"))
            row["sparsity"] = model.get("measured_sparsity")
            row["bits"] = model.get("bits")
            row["wall_time_s"] = rec.get("env", {}).get("wall_time_s")
            arithmetic = rec.get("arithmetic", {})
            row["threads"], row["cpu_kernels"] = arithmetic.get("threads"), arithmetic.get("cpu_kernels")
            row["arithmetic"], row["cpu_model"] = arithmetic.get("key"), arithmetic.get("cpu_model")
            row["git_commit"] = rec.get("env", {}).get("git_commit")
            conv = rec.get("convergence", {})
            row.update(loss_change=conv.get("loss_change_last_tenth"),
                       mapping_changes=conv.get("mapping_changes_last_quarter"), settled=conv.get("settled"))
            rows.append(row)
        columns = ["run_id", *RunSpec.__dataclass_fields__, "acc", "ece", "ece_temp_scaled", "substitute", "sparsity",
                   "bits",
                   "wall_time_s", "threads", "cpu_kernels", "arithmetic", "cpu_model", "git_commit", "loss_change",
                   "mapping_changes", "settled"]
        if not rows:
            return pd.DataFrame(columns=columns)
        table = pd.DataFrame(rows)
        if "ece_temp_scaled" not in table:  # records made before temperature scaling: the studies' gap tables read it
            table["ece_temp_scaled"] = None
        return table
