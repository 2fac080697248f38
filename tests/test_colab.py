"""The notebooks' Colab cell: installs from the declared repository, never touches torch, adds only what is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from vpcost_utils.nb import colab

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def _colab_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_colab_cell_and_the_declared_repository():
    cells = {path.name: _colab_cell(path) for path in NOTEBOOKS}
    assert len(set(cells.values())) == 1, "the Colab cells differ: " + ", ".join(cells)
    cell = next(iter(cells.values()))
    assert re.search(r'^\s*REPOSITORY = "([^"]+)"', cell, flags=re.M).group(1) == _repository()
    assert "--no-deps" in cell and "VPCOST_PIP_SPEC" in cell and 'if "google.colab" in sys.modules' in cell


def test_the_cell_does_nothing_off_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the cell ran pip off Colab"))
    exec(compile(_colab_cell(NOTEBOOKS[0]), "colab-cell", "exec"), {})


def test_the_placeholder_repository_stops_with_what_to_set(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.delenv("VPCOST_PIP_SPEC", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran with the placeholder URL"))
    if ".invalid/" not in _repository():
        pytest.skip("the repository URL is declared; nothing to stop")
    with pytest.raises(RuntimeError, match="VPCOST_PIP_SPEC"):
        exec(compile(_colab_cell(NOTEBOOKS[0]), "colab-cell", "exec"), {})


#: Installed by the cell's second step, so `vpcost_utils.nb.colab` must import without them.
NOT_ON_A_FRESH_RUNTIME = ("tflite", "flatbuffers", "papermill", "submitit", "ai_edge_litert", "selenium",
                          "efficientnet_lite_pytorch", "open_clip")
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not on a fresh Colab runtime")
sys.meta_path.insert(0, Block())
import vpcost_utils.nb.colab
"""


def test_the_colab_module_imports_before_the_missing_requirements_are_installed():
    code = f"BLOCKED = {NOT_ON_A_FRESH_RUNTIME!r}\n" + BLOCKER
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


COLAB_LIKE = {"torch": "2.9.0", "torchvision": "0.24.0", "numpy": "2.0.2", "timm": "1.0.20", "pandas": "2.2.2",
              "matplotlib": "3.10.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1", "nbformat": "5.10.4"}


def test_only_what_is_missing_or_too_old_is_installed_and_torch_is_kept():
    reqs = [Requirement(r) for r in ("torch>=2.14", "torchvision>=0.29", "timm>=1.0", "numpy>=1.26", "tflite>=2.10",
                                     "papermill>=2.6", "ipywidgets>=8.1", "jupyterlab>=4.2")]
    install, warnings = colab.missing_requirements(reqs, COLAB_LIKE.get)
    assert install == ["tflite>=2.10", "papermill>=2.6", "ipywidgets>=8.1"]  # no jupyterlab: Colab is the front end
    assert any("torch 2.9.0" in w for w in warnings) and any("torchvision 0.24.0" in w for w in warnings)
    assert colab.constraints(COLAB_LIKE.get) == ["torch==2.9.0", "torchvision==0.24.0"]


def test_install_missing_pins_torch_for_pip_and_drops_extra_markers(monkeypatch):
    reqs = [Requirement("torch>=2.14"), Requirement('papermill>=2.6; extra == "notebooks"')]
    monkeypatch.setattr(colab, "requirements", lambda dist, extras: reqs)
    calls = []

    def run(cmd, check):
        pins = Path(cmd[cmd.index("-c") + 1]).read_text().split()
        calls.append((cmd, pins))

    assert colab.install_missing(version_of=COLAB_LIKE.get, run=run) == ["papermill>=2.6"]
    [(cmd, pins)] = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and cmd[-1] == "papermill>=2.6"
    assert not any(arg.startswith("torch") for arg in cmd)
    assert pins == ["torch==2.9.0", "torchvision==0.24.0"]


def test_nothing_is_installed_when_everything_is_here():
    def run(*a, **k):
        raise AssertionError("pip ran although nothing is missing")

    assert colab.install_missing(version_of=lambda name: "999", run=run) == []


@pytest.fixture
def git_repository(tmp_path) -> Path:
    """A local git repository holding a copy of the package, as the public one would."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "vpcost_utils", repo / "vpcost_utils", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "release"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo


DRIVER = """
import json, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab's kernel has imported
exec(compile(open(sys.argv[1]).read(), "colab-cell", "exec"), {"__name__": "__main__"})
import torch, vpcost_utils
print(json.dumps({"vpcost": vpcost_utils.__file__, "torch": torch.__file__}))
"""


def test_the_cell_installs_from_a_git_repository_without_reinstalling_torch(git_repository, tmp_path):
    """The cell itself, with a stand-in google.colab; pip installs into a target folder, never into .venv."""
    cell = tmp_path / "cell.py"
    cell.write_text(_colab_cell(NOTEBOOKS[0]))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    target = tmp_path / "site"
    env = {**os.environ, "VPCOST_PIP_SPEC": f"git+file://{git_repository}", "PIP_TARGET": str(target),
           "PYTHONPATH": str(target), "PIP_NO_INPUT": "1"}
    out = subprocess.run([sys.executable, str(driver), str(cell)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    paths = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(paths["vpcost"]).is_relative_to(target)  # the package came from the git repository
    assert not Path(paths["torch"]).is_relative_to(target)  # torch is the environment's own
    installed = sorted(p.name for p in target.iterdir() if not p.name.startswith("."))
    assert not any(n.lower().startswith(("torch", "nvidia", "triton")) for n in installed), installed
    assert any(n.startswith("vpcost_utils") and n.endswith(".dist-info") for n in installed), installed
    assert "every requirement is already here" in out.stdout
