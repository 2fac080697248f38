"""Mid-run checkpoints: a run's whole training state, saved atomically, resumed to the same record bit for bit.

A run in progress used to be lost whole when its process died (a closed laptop lid, a SLURM preemption):
the requeued job started it again from epoch 0. Now the VP loop saves its state at the end of an epoch
once ``VPCOST_CHECKPOINT_SECONDS`` (default 300) of wall time have passed since the last save, so a long
run saves at every epoch end and a short one never pays for it; a restarted run continues from the last
save. The state is everything the rest of the run depends on: the prompt, the label mapping and its
history, the optimizer and scheduler, every RNG (the batch-order generator, torch's, numpy's, Python's),
the curves, the last test logits and the prompts saved so far. With the arithmetic pinned (``arithmetic``),
the resumed run's record equals the uninterrupted one's on a CPU, bit for bit (tests/test_checkpoint.py,
and ``python -m vpcost_utils.studies.kill_resume``, which SIGKILLs a run at random moments many times over).

A checkpoint lives at ``<store>/.checkpoints/<run_id>.pt`` and is removed once the run's record is written.
One that cannot be read (truncated), or that belongs to another run id, protocol (``config.PROTOCOL``) or
thread count, is refused with a warning and moved aside; the run then starts from zero. It never resumes
wrongly.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_torch_save
from .arithmetic import arithmetic_key, run_threads
from .config import PROTOCOL

SECONDS_ENV = "VPCOST_CHECKPOINT_SECONDS"
FORMAT = 2  # 2: the loop's state (epoch, step, curves, RNGs) beside the task's own (loop.run_epochs)


def interval_seconds() -> float:
    """Wall time between two saves: ``VPCOST_CHECKPOINT_SECONDS`` (0: every epoch end), default 300."""
    raw = os.environ.get(SECONDS_ENV, "300")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        from .errors import VpcostError

        raise VpcostError(f"{SECONDS_ENV}={raw!r} must be a number of seconds >= 0 (0: save at every epoch end)")
    return value


def rng_states() -> dict[str, Any]:
    """torch's, numpy's and Python's global RNG states, in types torch's weights-only loader accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                      cached],
            "python": [version, list(internal), gauss_next]}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class Checkpointer:
    """Saves and reloads one run's training state at ``path`` (None: checkpoints off, every call a no-op)."""

    def __init__(self, path: str | os.PathLike | None, run_id: str):
        self.path = Path(path) if path is not None else None
        self.run_id = run_id
        self.interval = interval_seconds() if path is not None else float("inf")
        self.last_save = time.monotonic()
        self.saves = 0
        self.seconds = 0.0  # spent saving, for the record's runtime

    def _identity(self) -> dict[str, Any]:
        return {"format": FORMAT, "run_id": self.run_id, "protocol": PROTOCOL, "threads": run_threads(),
                "arithmetic": arithmetic_key()}

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self.last_save >= self.interval

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None:
            return
        start = time.monotonic()
        atomic_torch_save({**self._identity(), "state": state}, self.path)
        self.last_save = time.monotonic()
        self.saves += 1
        self.seconds += self.last_save - start

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None: no checkpoint, or one refused (warned, moved aside as ``*.refused``)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, or not a checkpoint at all: whatever torch.load raises
            return self._refuse(f"it cannot be read ({type(exc).__name__}: {exc})")
        identity = self._identity()
        if not isinstance(saved, dict) or "state" not in saved:
            return self._refuse("it holds no training state")
        for key, value in identity.items():
            if saved.get(key) != value:
                return self._refuse(f"it was made with {key}={saved.get(key)!r}, this run has {value!r}")
        return saved["state"]

    def _refuse(self, why: str) -> None:
        warnings.warn(f"checkpoint {self.path} refused: {why}; run {self.run_id} starts from epoch 0", stacklevel=3)
        self.path.replace(self.path.with_name(self.path.name + ".refused"))
        return None

    def clear(self) -> None:
        if self.path is not None:
            discard(self.path)

    def runtime(self) -> dict[str, Any]:
        return {"checkpoint_saves": self.saves, "checkpoint_seconds": round(self.seconds, 3)}


def discard(path: str | os.PathLike) -> None:
    """Remove a run's checkpoint and the copy a refusal moved aside, once the record holds everything."""
    path = Path(path)
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".refused").unlink(missing_ok=True)


def checkpoint_path(store_root: str | os.PathLike, run_id: str) -> Path:
    return Path(store_root) / ".checkpoints" / f"{run_id}.pt"
