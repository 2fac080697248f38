"""Shared test set-up: a repository-local cache so the smoke source model is trained once per machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests must never try the network; the pretrained small CNN is cached here and shared by all tests.
os.environ.setdefault("VPCOST_HOME", str(ROOT / ".cache" / "vpcost"))
os.environ.setdefault("VPCOST_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """A fresh, empty VPCOST_HOME for tests that must not see the shared cache."""
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of many tiny ops: on a shared 2-core machine, OpenMP thread hand-offs
    cost more than the arithmetic (about 3x here). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node SLURM cluster on localhost (tests/slurm_cluster.py) for the session, stopped at its end;
    the test skips, saying why, where SLURM is not installed or its daemons cannot start here."""
    from slurm_cluster import LocalSlurm, SlurmUnavailable

    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        pytest.skip(f"no SLURM cluster here: {exc}")
    yield cluster
    cluster.stop()
