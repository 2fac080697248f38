"""``run(spec)``: one experiment, end to end, into one result record (skipped when it exists)."""

from __future__ import annotations

import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import rehearsal_mode as rehearsal
from ..allocator import keep_freed_memory
from ..arithmetic import fixed_arithmetic
from ..config import PROTOCOL, RunSpec, __version__
from .store import ResultStore


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str | torch.device) -> dict[str, Any]:
    """Library versions, git commit and device of this process, for every record's provenance."""
    import torchvision

    versions = {"vpcost_utils": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "python": platform.python_version()}
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:
        pass
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"versions": versions, "git_commit": _git_commit(), "device": f"{device.type}: {name}",
            "hostname": platform.node(), "torch_threads": torch.get_num_threads()}


def execute(spec: RunSpec, *, device: str | torch.device | None = None, progress: bool = True,
            checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Run ``spec`` and return its full record, without writing it. ``checkpoint``: where the loop saves the run's
    state mid-run and resumes from (``checkpoint.py``, ``loop.run_epochs``)."""
    device = device or default_device()
    malloc = keep_freed_memory()  # where memory lives, not what is computed: recorded in env, not in the identity
    start = time.time()
    with fixed_arithmetic(device) as arithmetic:
        if spec.task == "vp" and spec.method == "lp":
            from ..probe import run_lp

            body = run_lp(spec, device=device, progress=progress, checkpoint=checkpoint)
        elif spec.task == "vp":
            from ..vp.train_vp import run_vp

            body = run_vp(spec, device=device, progress=progress, checkpoint=checkpoint)
        elif spec.task == "clip":
            from ..clip import run_clip

            body = run_clip(spec, device=device, progress=progress, checkpoint=checkpoint)
        else:
            from ..crossmodal import run_crossmodal

            body = run_crossmodal(spec, device=device, progress=progress, checkpoint=checkpoint)
        env = environment(device)
    env.update(malloc=malloc, wall_time_s=round(time.time() - start, 3),
               finished=datetime.now(timezone.utc).isoformat())
    arithmetic["precision"] = body.get("runtime", {}).get("precision")
    record = {"run_id": spec.run_id, "protocol": PROTOCOL, "spec": spec.to_dict(), **body,
              "arithmetic": arithmetic, "env": env}
    if rehearsal.active():  # random weights and fake data: never to be read as a result
        record["rehearsal"] = True
    return record


def run(spec: RunSpec, store: ResultStore | None = None, *, device: str | torch.device | None = None,
        progress: bool = True) -> dict[str, Any]:
    """The record for ``spec``: read from ``store`` when it is there, else computed and written."""
    if store is None:
        return execute(spec, device=device, progress=progress)
    if store.path(spec.run_id).exists():  # one read decides: reuse the record, or say why it is made again
        reason = store.stale(spec)
        if reason is None:
            return store.read(spec.run_id)
        import warnings

        warnings.warn(f"run {spec.run_id}: {reason}; running it again", stacklevel=2)
    from ..checkpoint import checkpoint_path, discard

    saved = checkpoint_path(store.root, spec.run_id)
    record = execute(spec, device=device, progress=progress, checkpoint=saved)
    store.write(record)
    record.pop("_prompts", None)
    discard(saved)  # the record holds it all now
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m vpcost_utils.running.runs --model M --dataset D [...]``: one run, stored and summarised."""
    import argparse
    import dataclasses
    import json

    parser = argparse.ArgumentParser(description="Run one RunSpec (skipped when its record exists) and print its "
                                                 "metrics.")
    for f in dataclasses.fields(RunSpec):
        if f.name == "save_prompts":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool",):
            parser.add_argument(flag, action="store_true")
        elif f.name in ("model", "dataset"):
            parser.add_argument(flag, required=True)
        else:
            kind = float if f.name == "lr" else (str if f.name in ("method", "task", "class_names", "oversized",
                                                                   "precision") else int)
            parser.add_argument(flag, type=kind, default=f.default)
    parser.add_argument("--output-dir", default="outputs/runs", help="the record goes to <output-dir>/<run_id>.json")
    parser.add_argument("--device", default=None)
    args = vars(parser.parse_args(argv))
    output_dir, device = Path(args.pop("output_dir")), args.pop("device")
    spec = RunSpec(**args)
    record = run(spec, ResultStore(output_dir), device=device)
    summary = {k: record["metrics"][k] for k in ("acc", "best_acc", "ece") if k in record["metrics"]}
    print(json.dumps({"run_id": spec.run_id, **summary, "wall_time_s": record["env"]["wall_time_s"],
                      "record": str(output_dir / f"{spec.run_id}.json")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
