"""Rehearse a GPU profile on this CPU before paying for GPU hours (``make rehearse``).

``python -m vpcost_utils.rehearsal.rehearse --profile quick``.

In a temporary ``VPCOST_HOME`` it writes random-weight checkpoints for every model of the profile in each
published file layout and name, and fake datasets in each layout the loaders read
(``rehearsal.fakes``); then it runs every notebook of the profile end to end, offline, on the CPU, with
the grid thinned so that every model, dataset and method runs at least once (``rehearsal.thinning``). On the
way it measures, per architecture, one training step and one evaluation batch and the peak memory, and
projects what the real profile would cost with ``vpcost_utils.running.plan``. It ends with the list of what ran
and fails unless that covers every model, dataset, method and notebook of the profile.

Outputs go to ``outputs/rehearsal/<profile>/`` (the index's first line says it is a rehearsal) and every
run record carries ``"rehearsal": true``. ``--ci`` runs the CI-sized subset of ``tests/test_rehearse.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository: vpcost_utils/<folder>/<this file>
DEFAULT_OUTPUT = ROOT / "outputs" / "rehearsal"
#: Batch of the timed steps: VP's Table-5 batch at N = 1 (8), two images for CLIP ViT-L/14@336 on a CPU.
TIMED_BATCH = {"clip_vit_l14_336": 2}
DEFAULT_TIMED_BATCH = 8


def isolate(home: Path) -> None:
    """Point every cache at ``home`` and forbid the network, for this process and the kernels it starts.

    Must run before ``huggingface_hub`` is imported (it reads ``HF_HOME`` once, at import).
    """
    os.environ.update({"VPCOST_HOME": str(home), "TORCH_HOME": str(home / "torch"), "HF_HOME": str(home / "hf"),
                       "VPCOST_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "VPCOST_REHEARSAL": "1", "MPLBACKEND": "Agg"})
    for name in ("VPCOST_DATA", "VPCOST_CHECKPOINTS"):
        os.environ.pop(name, None)


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _own_peak_mb() -> float:
    """This process's own peak resident memory since its exec (``VmHWM``; ``ru_maxrss`` keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return _peak_mb()


# ------------------------------------------------------------------------------------------------ fake files


def write_fakes(models: list[str], datasets: list[str]) -> dict[str, str]:
    """Write every model's checkpoint and every dataset; returns {model or dataset: layout written}.

    In a child process: building ViT-L/14@336 files takes a few GB that this process would keep.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_write_fakes, (models, datasets))


def _write_fakes(models: list[str], datasets: list[str]) -> dict[str, str]:
    from . import fakes

    layouts: dict[str, str] = {}
    for name in models:
        t0 = time.time()
        layouts[name] = fakes.write_checkpoint(name)
        print(f"    wrote {name}: {layouts[name]} ({time.time() - t0:.0f} s)", flush=True)
    for name in datasets:
        layouts[name] = "; ".join(fakes.write_dataset(name))
        print(f"    wrote {name}: {layouts[name]}", flush=True)
    return layouts


# ------------------------------------------------------------------------------------------------- timing


def _time_arch(model: str, batch: int) -> dict[str, float]:
    """One training step (forward + backward to the input, as a prompt's) and one eval batch of ``model``."""
    import torch

    from ..models import create_model

    torch.manual_seed(0)
    source = create_model(model)
    size = source.canvas_size
    x = torch.randn(batch, 3, size, size)

    def train_step() -> None:
        xi = x.clone().requires_grad_(True)
        source.module(xi).float().sum().backward()

    def eval_batch() -> None:
        with torch.no_grad():
            source.module(x)

    out = {"batch": batch, "canvas": size}
    for label, step in (("train_s", train_step), ("eval_s", eval_batch)):
        step()  # warm-up: first-call allocations and kernel selection
        t0 = time.perf_counter()
        step()
        out[label] = time.perf_counter() - t0
    out["peak_mb"] = _own_peak_mb()
    return out


def time_architectures(models_by_arch: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per architecture: seconds of one train step and one eval batch, and the peak memory, each in a fresh process."""
    import multiprocessing

    results = {}
    ctx = multiprocessing.get_context("spawn")  # a fresh process per architecture: its own peak memory
    for arch, model in models_by_arch.items():
        with ctx.Pool(1) as pool:
            results[arch] = pool.apply(_time_arch, (model, TIMED_BATCH.get(arch, DEFAULT_TIMED_BATCH)))
        r = results[arch]
        print(f"    {arch:18} ({model}, batch {r['batch']} at {r['canvas']} px): train step {r['train_s']:.2f} s, "
              f"eval batch {r['eval_s']:.2f} s, peak memory {r['peak_mb']:.0f} MB", flush=True)
    return results


def projected_cost(profile: str, timings: dict[str, dict[str, float]]) -> None:
    """What the real profile would cost on this device, from the measured rates (``vpcost_utils.running.plan``)."""
    from ..running import plan

    ips = [f"{arch}={t['batch'] / t['train_s']:.3f}:{t['batch'] / t['eval_s']:.3f}" for arch, t in timings.items()]
    print(f"    python -m vpcost_utils.running.plan --profile {profile} --ips {' '.join(ips)}", flush=True)
    plan.main(["--profile", profile, "--ips", *ips])


# ------------------------------------------------------------------------------------------------- notebooks


def run_notebooks(profile: str, output_dir: Path, parameters: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, float], dict[str, str]]:
    """Execute each notebook with its rehearsal parameters: (seconds of those that ran, error of those that failed).

    A failing notebook does not stop the others: one rehearsal should find every broken path at once.
    """
    from ..nb.reproduce import execute

    seconds, failed = {}, {}
    for name, params in parameters.items():
        t0 = time.time()
        print(f"==> {name} {json.dumps(params)}", flush=True)
        try:
            execute(name, profile, output_dir, {"device": "cpu", **params} if name != "07_summary" else params,
                    progress=False)
        except Exception as exc:  # papermill's error names the cell; the executed copy has the traceback
            failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            print(f"    FAILED after {time.time() - t0:.0f} s: {failed[name]}", flush=True)
            continue
        seconds[name] = time.time() - t0
        print(f"    done in {seconds[name]:.0f} s", flush=True)
    return seconds, failed


def mark_index(out: Path) -> Path:
    """Write the index with the rehearsal banner as its first line."""
    from ..nb.artifacts import write_index
    from ..rehearsal_mode import INDEX_BANNER

    index = write_index(out)
    index.write_text(INDEX_BANNER + "\n\n" + index.read_text())
    return index


def read_records(out: Path) -> list[dict[str, Any]]:
    """Every run record under ``out``: the sections' store (``runs/``) and the report's (``report/runs/``)."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("**/runs/*.json"))]


def report(profile: str, out: Path, layouts: dict[str, str], seconds: dict[str, float], ci: bool) -> list[str]:
    """Print what ran; return the problems (an empty list: the rehearsal covers the profile)."""
    from ..nb.artifacts import NOTEBOOKS, missing_files
    from ..running.plan import arch_of
    from .thinning import CI_PLAN, exercised, uncovered

    records = read_records(out)
    got = exercised(records)
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    print("\nexercised:")
    print(f"  notebooks ({len(seconds)}): {', '.join(seconds)}")
    print(f"  architectures: {', '.join(sorted({arch_of(m) for m in got['models']}))}")
    print(f"  models ({len(got['models'])}), with the file layout each was read from:")
    for model in sorted(got["models"]):
        print(f"    {model}: {layouts.get(model, '?')}")
    print(f"  datasets ({len(got['datasets'])}): " + "; ".join(f"{d} ({layouts.get(d, '?')})"
                                                              for d in sorted(got["datasets"])))
    print(f"  methods: {', '.join(sorted(got['methods']))}")
    print(f"  run records: {len(records)}, all marked rehearsal: {all(r.get('rehearsal') for r in records)}")
    print(f"  figures ({len(figures)}): {', '.join(figures)}")
    problems = [f"record {r['run_id']} is not marked rehearsal" for r in records if not r.get("rehearsal")]
    problems += [f"notebook {n} did not run" for n in NOTEBOOKS if n not in seconds and not ci]
    problems += [f"notebook {n} did not run" for n in CI_PLAN if n not in seconds and ci]
    problems += [f"missing artifact {p}" for p in missing_files(out) if not ci]
    if not ci:
        problems += [f"not exercised: {kind} {', '.join(names)}" for kind, names in uncovered(profile, records).items()
                     if names]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "paper"))
    parser.add_argument("--ci", action="store_true", help="the CI-sized subset (smallest family of each section)")
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT), help="default: outputs/rehearsal/")
    parser.add_argument("--home", default=None, help="VPCOST_HOME for the fake files (default: a temporary folder, "
                                                     "deleted at the end)")
    parser.add_argument("--skip-timing", action="store_true", help="skip the per-architecture timing and projection")
    args = parser.parse_args(argv)
    start = time.time()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="vpcost-rehearsal-"))
    isolate(home)
    from ..running.plan import arch_of
    from .thinning import notebook_parameters

    output_dir = Path(args.output_dir)
    out = output_dir / args.profile
    if out.exists():  # a rehearsal's own folder: stale records must not count as covered
        shutil.rmtree(out)
    parameters = notebook_parameters(args.profile, ci=args.ci)
    models, datasets = _inputs(args.profile, parameters)
    print(f"rehearsal of the {args.profile} profile{' (CI subset)' if args.ci else ''}: VPCOST_HOME={home}, "
          f"outputs in {out}", flush=True)
    try:
        print(f"writing fake checkpoints ({len(models)} models) and datasets ({len(datasets)}) ...", flush=True)
        layouts = write_fakes(models, datasets)
        timings = {}
        if not args.skip_timing:
            print("timing one training step and one evaluation batch per architecture (random weights) ...",
                  flush=True)
            by_arch: dict[str, str] = {}
            for model in models:
                by_arch.setdefault(arch_of(model), model)
            timings = time_architectures(by_arch)
            if not args.ci:
                projected_cost(args.profile, timings)
        seconds, failed = run_notebooks(args.profile, output_dir, parameters)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    mark_index(out)
    problems = [f"notebook {n} failed: {e} (see {out / 'executed' / (n + '.ipynb')})" for n, e in failed.items()]
    problems += report(args.profile, out, layouts, seconds, args.ci)
    peak = max(_peak_mb(), _peak_mb(resource.RUSAGE_CHILDREN))
    print(f"\nrehearsal wall time {time.time() - start:.0f} s, peak memory of one process {peak:.0f} MB")
    if problems:
        print("REHEARSAL FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("rehearsal passed: " + ("every notebook of the CI subset ran on fake files" if args.ci else
                                  "every notebook ran; every model, dataset and method of the profile was exercised"))
    return 0


def _inputs(profile: str, parameters: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Models and datasets the rehearsal's notebooks load (the full profile's, or the CI subset's)."""
    from .. import profiles
    from ..grids import section_runs
    from ..nb.artifacts import NOTEBOOK_SECTIONS

    pairs: list[tuple[str, str]] = []  # (model, dataset)
    for name, params in parameters.items():
        section = NOTEBOOK_SECTIONS.get(name) or ("your_model" if name == "08_your_model" else None)
        if section is None:
            continue
        defaults = profiles.settings(section, profile)
        ours = {k: v for k, v in params.items() if k in defaults}
        if section == "your_model":
            cfg = profiles.settings(section, profile, **ours)
            pairs += [(m, d) for m in [cfg["dense"], *cfg["compressed"]] for d in cfg["datasets"]]
        else:
            pairs += [(s.model, s.dataset) for s in section_runs(section, profile, **ours)]
    return list(dict.fromkeys(m for m, _ in pairs)), list(dict.fromkeys(d for _, d in pairs))


if __name__ == "__main__":
    sys.exit(main())
