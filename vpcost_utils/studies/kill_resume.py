"""Kill a run at random moments, over and over, and check that the record it ends with is the uninterrupted one.

``python -m vpcost_utils.studies.kill_resume --kills 50 --output /tmp/kill`` runs one spec (default: a smoke-sized
ILM run) once without interruption, then again as a separate process that is SIGKILLed after a random
delay (drawn over the whole run, so kills land before the first save, mid-epoch, and during checkpoint
writes), restarted, killed again, and so on until it finishes; and that again, until ``--kills`` kills
have landed. Checkpoints are saved at every epoch end (``VPCOST_CHECKPOINT_SECONDS=0``). It prints the
kills, how many restarts resumed from a checkpoint, how many kills landed during a checkpoint write (a
temporary file left behind), the work lost per kill (time since the last save), and whether every final
record equals the uninterrupted one in every result field (metrics, curves, mappings, per-image
predictions). Exit 1 if one does not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import RunSpec

RESULT_FIELDS = ("metrics", "curves", "mapping", "mapping_history", "test_predictions", "convergence")


def _command(spec: RunSpec, output: Path) -> list[str]:
    args = [sys.executable, "-m", "vpcost_utils.running.runs", "--model", spec.model, "--dataset", spec.dataset,
            "--method", spec.method, "--seed", str(spec.seed), "--epochs", str(spec.epochs),
            "--eval-every", str(spec.eval_every), "--output-dir", str(output)]
    for name in ("n_shots", "max_test", "canvas"):
        if getattr(spec, name) is not None:
            args += ["--" + name.replace("_", "-"), str(getattr(spec, name))]
    return args


def _run(spec: RunSpec, output: Path, *, kill_after: float | None = None) -> tuple[bool, float]:
    """One process; killed after ``kill_after`` seconds if still running. Returns (finished, seconds)."""
    # the child runs this very package (not whatever another install put first on the path)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "VPCOST_CHECKPOINT_SECONDS": "0",
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    start = time.monotonic()
    proc = subprocess.Popen(_command(spec, output), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False, time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the run exited with {proc.returncode}: {' '.join(_command(spec, output))}")
    return True, time.monotonic() - start


def trial(spec: RunSpec, output: Path, kills: int, seed: int = 0) -> dict:
    """The uninterrupted record, then interrupted runs until ``kills`` kills have landed; the figures ``main``
    prints. Each interrupted run starts fresh, is SIGKILLed after a random delay (uniform over the
    uninterrupted run's wall time, process start included), restarted, killed again, ... until it finishes."""
    from ..checkpoint import checkpoint_path

    rng = random.Random(seed)
    _, full = _run(spec, output / "uninterrupted")
    reference = json.loads((output / "uninterrupted" / f"{spec.run_id}.json").read_text())
    killed_dir = output / "killed"
    record, ckpt = killed_dir / f"{spec.run_id}.json", checkpoint_path(killed_dir, spec.run_id)
    counts = {"runs": 0, "identical_runs": 0, "kills": 0, "restarts_from_checkpoint": 0, "kills_during_a_write": 0}
    lost, differing = [], set()
    while counts["kills"] < kills:
        record.unlink(missing_ok=True)
        ckpt.unlink(missing_ok=True)
        done = False
        while not done:
            had_checkpoint = ckpt.exists()
            before = ckpt.stat().st_mtime if had_checkpoint else None
            started = time.time()
            done, _ = _run(spec, killed_dir, kill_after=rng.uniform(0.2, full))
            counts["restarts_from_checkpoint"] += had_checkpoint
            if done:
                break
            counts["kills"] += 1
            after = ckpt.stat().st_mtime if ckpt.exists() else None
            lost.append(time.time() - (after if after is not None and after != before else started))
            debris = list(ckpt.parent.glob(f".{ckpt.name}.*.tmp")) if ckpt.parent.exists() else []
            counts["kills_during_a_write"] += len(debris)
            for path in debris:  # what a kill during a write leaves: never read, removed here
                path.unlink()
        final = json.loads(record.read_text())
        same = {key: final.get(key) == reference.get(key) for key in RESULT_FIELDS}
        differing |= {key for key, ok in same.items() if not ok}
        counts["runs"] += 1
        counts["identical_runs"] += all(same.values())
    return {**counts, "uninterrupted_s": round(full, 2),
            "mean_lost_per_kill_s": round(sum(lost) / max(len(lost), 1), 2),
            "identical": counts["identical_runs"] == counts["runs"], "differing_fields": sorted(differing),
            "checkpoint_left": ckpt.exists()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--output", default="outputs/kill-resume")
    parser.add_argument("--model", default="smallcnn/dense")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--n-shots", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--canvas", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = RunSpec(args.model, args.dataset, n_shots=args.n_shots, epochs=args.epochs,
                   eval_every=max(1, args.epochs // 3), max_test=args.max_test, canvas=args.canvas, seed=args.seed)
    output = Path(args.output) / spec.run_id
    for folder in (output / "uninterrupted", output / "killed"):  # a fresh trial each time
        for path in [*folder.glob("*.json"), *folder.glob(".checkpoints/*")]:
            path.unlink()
    result = trial(spec, output, args.kills, args.seed)
    print(json.dumps({"spec": spec.to_dict(), **result}, indent=1))
    return 0 if result["identical"] and not result["checkpoint_left"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
