"""Colab set-up: what the notebooks' first cell calls after ``pip install --no-deps`` of this package.

A fresh Colab runtime already has torch, torchvision, numpy, matplotlib, pandas, scikit-learn and
more, built for its CUDA. Installing this package with its dependencies would let pip replace them
(``torch>=2.14`` may be newer than Colab's), a multi-GB download that breaks the runtime's CUDA
build. So the cell installs the package alone (``--no-deps``, from the repository declared in
``pyproject.toml`` ``[project.urls] Repository`` or ``VPCOST_PIP_SPEC``) and then calls
``install_missing()``, which installs only the requirements that are absent or too old, with the
installed torch and torchvision pinned by a constraints file so that pip cannot touch them.

Only the standard library and ``packaging`` (on every Colab runtime; pip needs it) are used here.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

DIST = "vpcost-utils"
#: Never installed, upgraded or downgraded by the cell: the runtime's own CUDA builds.
NEVER_INSTALL = ("torch", "torchvision", "torchaudio")
#: Not needed on Colab, which is its own notebook front end.
NOT_ON_COLAB = ("jupyterlab", "jupyterlab-widgets")
#: The extras the notebooks need besides the core requirements.
EXTRAS = ("notebooks",)


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(dist: str = DIST, extras: Iterable[str] = EXTRAS) -> list:
    """The ``packaging`` Requirements of ``dist`` that apply here: core ones plus those of ``extras``."""
    from packaging.requirements import Requirement

    out = []
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            out.append(req)
    return out


def missing_requirements(reqs: Iterable, version_of: Callable[[str], str | None] = _installed_version
                         ) -> tuple[list[str], list[str]]:
    """(what to install, warnings): requirements absent or outside their bounds, except the ones never installed.

    A torch (or torchvision) below our bound is kept and reported: the runtime's build is worth more
    than the bound, which only reflects what the lock file was tested with.
    """
    from packaging.utils import canonicalize_name

    install, warnings = [], []
    for req in reqs:
        name = canonicalize_name(req.name)
        have = version_of(req.name)
        ok = have is not None and (not req.specifier or req.specifier.contains(have, prereleases=True))
        if name in NEVER_INSTALL:
            if have is None:
                warnings.append(f"{req.name} is not installed and is never installed by this cell: install it first")
            elif not ok:
                warnings.append(f"keeping the runtime's {req.name} {have} (vpcost is tested with {req}); "
                                "most code paths work with it")
        elif name in NOT_ON_COLAB or ok:
            continue
        else:  # without its marker: `extra == "notebooks"` is false for a plain `pip install`
            install.append(req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "") + str(req.specifier))
    return install, warnings


def constraints(version_of: Callable[[str], str | None] = _installed_version) -> list[str]:
    """``name==version`` of every installed package that is never to change (pip's ``-c`` file lines)."""
    return [f"{name}=={version_of(name)}" for name in NEVER_INSTALL if version_of(name)]


def install_missing(dist: str = DIST, extras: Iterable[str] = EXTRAS, *,
                    version_of: Callable[[str], str | None] = _installed_version,
                    run: Callable[..., object] = subprocess.run, quiet: bool = True) -> list[str]:
    """Install what ``dist`` needs and the runtime lacks; returns those requirements (empty: nothing to do)."""
    install, warnings = missing_requirements(requirements(dist, extras), version_of)
    for line in warnings:
        print(f"vpcost: {line}", file=sys.stderr)
    if install:
        with tempfile.TemporaryDirectory() as tmp:
            pins = Path(tmp) / "constraints.txt"
            pins.write_text("\n".join(constraints(version_of)) + "\n")
            run([sys.executable, "-m", "pip", "install", *(["-q"] if quiet else []), "-c", str(pins), *install],
                check=True)
        importlib.invalidate_caches()
    print(f"vpcost: installed {', '.join(install)}" if install else "vpcost: every requirement is already here")
    return install

