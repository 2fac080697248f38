"""Shared test set-up: a repository-local cache so the smoke source model is trained once per machine.

The real registry files (EfficientNet-Lite weights, the int8 TFLite model, MNIST, Fashion-MNIST) that a user
already fetched into their own cache (``make fetch`` writes ``~/.cache/vpcost``) are linked into the test
cache when their sha256 matches; a real-file test that still finds none skips, naming ``make fetch``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where ``make fetch`` puts the registry files (``paths.home()`` without VPCOST_HOME).
USER_HOME = Path.home() / ".cache" / "vpcost"
# Tests must never try the network; the pretrained small CNN is cached here and shared by all tests.
os.environ.setdefault("VPCOST_HOME", str(ROOT / ".cache" / "vpcost"))
os.environ.setdefault("VPCOST_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def adopt_fetched_files(user_home: Path = USER_HOME) -> list[Path]:
    """Link (or copy) into the test cache every registry file it lacks and ``user_home`` has with the right sha256."""
    from vpcost_utils import paths
    from vpcost_utils.fetch import sha256_of
    from vpcost_utils.running.mini_files import mini_files

    test_home = paths.home().resolve()
    if not user_home.is_dir() or user_home.resolve() == test_home:
        return []
    adopted = []
    for _, files, folder in mini_files():
        try:
            theirs = user_home / folder.resolve().relative_to(test_home)
        except ValueError:  # VPCOST_DATA / VPCOST_CHECKPOINTS point elsewhere: leave them alone
            continue
        for file in files:
            source, target = theirs / file.filename, folder / file.filename
            if target.exists() or not source.is_file() or sha256_of(source) != file.sha256:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system
                shutil.copyfile(source, target)
            adopted.append(target)
    return adopted


adopt_fetched_files()


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


@pytest.fixture
def interrupt_after(monkeypatch):
    """``interrupt_after(n)`` makes the training loop die (as a kill would) when it starts epoch ``n + 1``; it returns
    the epoch counter, so a resumed run can be checked for the epochs it did not redo."""
    from vpcost_utils import loop

    def arm(epochs: int) -> list[int]:
        real, calls = loop.train_epoch, []

        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == epochs + 1:
                raise KeyboardInterrupt("killed")
            return real(*args, **kwargs)

        monkeypatch.setattr(loop, "train_epoch", dying)
        return calls

    return arm


@pytest.fixture
def killed_then_resumed(monkeypatch, interrupt_after):
    """``killed_then_resumed(spec, epochs, path)``: run ``spec`` with a checkpoint at every epoch end, kill it as it
    starts epoch ``epochs + 1``, then run it again (the real loop, counted) from ``path``; returns (the resumed
    record, the epochs the resumed run trained)."""
    from vpcost_utils import checkpoint
    from vpcost_utils.running.runs import execute

    def go(spec, epochs: int, path):
        monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
        interrupt_after(epochs)
        with pytest.raises(KeyboardInterrupt):
            execute(spec, progress=False, checkpoint=path)
        monkeypatch.undo()  # the process "restarts"
        monkeypatch.setenv(checkpoint.SECONDS_ENV, "0")
        calls = interrupt_after(99)
        return execute(spec, progress=False, checkpoint=path), calls

    return go
