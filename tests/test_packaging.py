"""The set-up a new user runs: pins agree, the docs match the registry, the two README commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vpcost_utils import profiles
from vpcost_utils.errors import SpecError, UnknownNameError, VpcostError

ROOT = Path(__file__).resolve().parent.parent


def _locked() -> dict[str, str]:
    """Package -> version of every lock entry that applies to this interpreter (the lock is universal: a package
    can appear once per environment marker)."""
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    out = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if m and (m[3] is None or Marker(m[3]).evaluate()):
            out[canonicalize_name(m[1])] = m[2]
    return out


def test_lock_pins_every_package_with_hashes():
    # pip's --require-hashes rule, which `make install` uses: every requirement at ==, each with a sha256
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements-lock.txt").read_text().split("\n", 2)[2])
    entries = [e for e in entries if e.strip() and not e.startswith("#")]
    assert len(entries) > 150  # the whole environment, not the direct dependencies only
    for entry in entries:
        head = entry.split("\\", 1)[0]
        assert "==" in head and "--hash=sha256:" in entry, f"not pinned with a hash: {head.strip()}"
    assert "--require-hashes" in (ROOT / "Makefile").read_text()


def test_lock_satisfies_pyproject_and_holds_every_direct_pin():
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    locked = _locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in ("notebooks", "sweep", "dev")
                                          for r in project["optional-dependencies"][extra])]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} (pyproject.toml) is not in requirements-lock.txt: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"lock has {req.name}=={locked[name]}, pyproject.toml asks {req.specifier}"
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.in").read_text(), re.M):
        assert locked[canonicalize_name(name)] == version, f"requirements.in pins {name}=={version}: run make lock"


def test_environment_yml_installs_the_lock():
    env = (ROOT / "environment.yml").read_text()
    assert re.findall(r"^\s*- (-r .*)$", env, re.M) == ["-r requirements-lock.txt"]
    assert not re.search(r"==", env)  # no second list of pins to drift from the lock
    assert "python=3.11" in env and "--python-version 3.11" in (ROOT / "Makefile").read_text()


def test_readme_states_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make reproduce" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_models_doc_is_generated_from_the_registry():
    # A fresh interpreter, exactly the documented command: other tests register throwaway models.
    out = subprocess.run([sys.executable, "-m", "vpcost_utils.models"], capture_output=True, text=True, check=True)
    assert (ROOT / "docs" / "models.md").read_text() == out.stdout, \
        "regenerate it: python -m vpcost_utils.models > docs/models.md"
    assert "| `resnet50/acdc-90` |" in out.stdout and "| `deit_tiny/w3a3` |" in out.stdout


def test_profile_settings_check_names_and_types():
    s = profiles.settings("sparse_transfer", "smoke", epochs=3)
    assert s["epochs"] == 3 and s["profile"] == "smoke"
    with pytest.raises(SpecError, match="'epoch'"):
        profiles.settings("sparse_transfer", "smoke", epoch=3)
    with pytest.raises(SpecError, match="'shots' must be a list"):
        profiles.settings("sparse_transfer", "smoke", shots=5)
    with pytest.raises(UnknownNameError, match="smoke"):
        profiles.settings("sparse_transfer", "smok")


def test_missing_data_and_checkpoints_are_listed_together_before_training(isolated_home, monkeypatch):
    from vpcost_utils.nb import notebook
    from vpcost_utils.running import sweep

    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    specs = sweep.grid(model=["resnet50/dense", "resnet50/acdc-90"], dataset=["cifar10", "oxford_pets"])
    with pytest.raises(VpcostError) as info:
        notebook.preflight(specs)
    message = str(info.value)
    for item in ("resnet50/dense", "resnet50/acdc-90", "cifar10", "oxford_pets"):
        assert item in message
    assert "nothing was trained" in message


def test_reproduce_checks_the_whole_profile_before_any_notebook(isolated_home, monkeypatch, tmp_path, capsys):
    from vpcost_utils.nb import reproduce

    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    executed = []
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: executed.append(a))
    assert reproduce.main(["--profile", "quick", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert executed == []  # nothing ran
    # items of several notebooks in one list, each once
    for item in ("resnet50/dense", "cifar10", "clip_vit_l14_336/openai", "deit_tiny", "splice"):
        assert item in err
    assert err.count("checkpoint of clip_vit_l14_336/openai") == 1
