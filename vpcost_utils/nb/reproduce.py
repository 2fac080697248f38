"""Execute the section notebooks headlessly with papermill: ``python -m vpcost_utils.nb.reproduce``.

``make reproduce`` calls this. Notebooks run in order with kernel ``python3`` and the notebook
folder as working directory; each executed copy is saved to ``outputs/<profile>/executed/``.
Parameters we pass must be declared in the notebook's ``parameters`` cell (papermill only warns
on unknown names; we refuse them before anything runs). A failing notebook stops the run with a
non-zero exit; papermill has already saved its executed copy with the error banner, and every
result already stored is kept, so the next run resumes where this one stopped. Before anything
loads, the network is probed once (``fetch.settle_network``): where the hosts the files come from
do not answer, the run goes offline at once and the list of what is missing comes within seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..config import RunSpec
from ..errors import SpecError, UnknownNameError, VpcostError
from ..fetch import settle_network
from ..grids import section_runs
from ..profiles import PROFILES
from .artifacts import NOTEBOOK_SECTIONS, NOTEBOOKS, missing_files, write_index

ROOT = Path(__file__).resolve().parents[2]  # the repository: vpcost_utils/<folder>/<this file>
NOTEBOOK_DIR = ROOT / "notebooks"


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Names of the notebook's ``parameters`` cell with papermill's inferred type and default."""
    import papermill

    return {name: dict(p) for name, p in papermill.inspect_notebook(str(notebook)).items()}


def check_parameters(notebook: Path, params: dict[str, Any]) -> None:
    declared = declared_parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise SpecError(f"{notebook.name} does not declare parameter(s) {unknown}; it declares {sorted(declared)}")


def execute(name: str, profile: str, output_dir: Path, params: dict[str, Any] | None = None, *,
            progress: bool = True) -> Path:
    """Run one notebook; returns the executed copy's path. Raises papermill's error on failure."""
    import papermill

    notebook = NOTEBOOK_DIR / f"{name}.ipynb"
    if not notebook.exists():
        raise UnknownNameError("notebook", name, NOTEBOOKS)
    declared = declared_parameters(notebook)
    # the summary reads results only: runtime options of the training notebooks do not apply to it
    params = {k: v for k, v in (params or {}).items() if k in declared or k not in ("device", "runner")}
    params = {"profile": profile, "output_dir": str(output_dir.resolve()), **params}
    check_parameters(notebook, params)
    executed = output_dir / profile / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    os.environ["VPCOST_HEADLESS"] = "1"  # the kernel inherits it: skip widget panels
    os.environ.setdefault("TQDM_DISABLE", "0" if progress else "1")
    papermill.execute_notebook(str(notebook), str(executed), parameters=params, kernel_name="python3",
                               cwd=str(NOTEBOOK_DIR), progress_bar=progress, log_output=progress)
    return executed


def check_profile(profile: str, notebooks: list[str]) -> int:
    """Load every model and dataset the notebooks' grids need; the number of runs they hold.

    Raises one ``VpcostError`` listing everything missing, before any notebook starts.
    """
    from .notebook import preflight  # papermill, matplotlib: only once a run starts

    specs = planned_runs(profile, notebooks)
    preflight(specs)
    return len({spec.run_id for spec in specs})


def planned_runs(profile: str, notebooks: list[str] = NOTEBOOKS) -> list[RunSpec]:
    """The runs the notebooks train on ``profile``, section by section (``grids.section_runs``)."""
    return [spec for name in notebooks if name in NOTEBOOK_SECTIONS
            for spec in section_runs(NOTEBOOK_SECTIONS[name], profile)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "smoke"), choices=PROFILES,
                        help="smoke (offline CPU miniature, default), quick (one GPU, ~1 h) or paper (full grid)")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs"), help="default: outputs/")
    parser.add_argument("--notebooks", nargs="*", default=list(NOTEBOOKS),
                        help=f"subset to run, by name (default: all: {' '.join(NOTEBOOKS)})")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--runner", default=os.environ.get("RUNNER") or None,
                        help="serial (default), processes (a worker pool on this machine: faster on a CPU) or "
                             "submitit; passed to every notebook that trains")
    args = parser.parse_args(argv)
    # papermill streams the kernel's output (our progress bars) through its logger.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    output_dir = Path(args.output_dir)
    extra = {"device": args.device} if args.device else {}
    # The mini profile trains on the CPU: two single-thread workers beat one two-thread process there.
    runner = args.runner or ("processes" if args.profile == "mini" else None)
    if runner:
        extra["runner"] = runner
    start = time.time()
    print(settle_network(), flush=True)  # before anything downloads: no minute of retries on a dead network
    try:
        print(f"checking what the {args.profile} profile needs (models, datasets) ...", flush=True)
        print(f"    {check_profile(args.profile, args.notebooks)} runs planned", flush=True)
    except VpcostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in args.notebooks:
        t0 = time.time()
        print(f"==> {name} ({args.profile})", flush=True)
        try:
            executed = execute(name, args.profile, output_dir, extra)
        except VpcostError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # papermill's execution error: the executed copy has the banner
            print(f"error: {name} failed; see {output_dir / args.profile / 'executed' / (name + '.ipynb')}\n{exc}",
                  file=sys.stderr)
            return 1
        print(f"    done in {time.time() - t0:.0f} s -> {executed}", flush=True)
    out = output_dir / args.profile
    index = write_index(out)
    missing = missing_files(out)
    print(f"all notebooks done in {time.time() - start:.0f} s; index: {index}")
    if missing and set(args.notebooks) == set(NOTEBOOKS):
        print("missing artifacts: " + ", ".join(missing), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
