"""Rehearsal mode: run a GPU profile on random weights and fake data, on a CPU, before paying for GPU hours.

``python -m vpcost_utils.rehearsal.rehearse --profile quick`` sets ``VPCOST_REHEARSAL=1`` for itself and the notebook
kernels it starts. While it is set:

- checksums are not compared (registry sha256, torchvision's hash-named weight files, torchvision's
  dataset md5s): fake files in the published layouts cannot match the real files' hashes, and every
  other check (strict key/shape load, sparsity, bit widths) still runs;
- every run record carries ``"rehearsal": true``, so no table can take it for a result.

This module is imported by the loaders, so it stays free of heavy imports; the fake-file writers are
in ``rehearsal.fakes`` and the runner in ``vpcost_utils.rehearsal.rehearse``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ENV = "VPCOST_REHEARSAL"
#: The first line of a rehearsal's ``index.md``: nothing under it is a result.
INDEX_BANNER = ("> **REHEARSAL: random weights and fake data (vpcost_utils.rehearsal.rehearse). Nothing here is a "
                "result; "
                "these files only show that every path runs.**")


def active() -> bool:
    """True while a rehearsal runs (``VPCOST_REHEARSAL`` set to anything but empty/0/false/no)."""
    return os.environ.get(ENV, "0").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def dataset_checksums_off() -> Iterator[None]:
    """Inside a rehearsal, torchvision accepts dataset files whose md5 differs from the real release's.

    CIFAR-10, SVHN and Flowers102 compare md5s in their constructors; fake files in their layout can
    never match. Outside a rehearsal this does nothing.
    """
    if not active():
        yield
        return
    import torchvision.datasets.cifar
    import torchvision.datasets.flowers102
    import torchvision.datasets.svhn

    modules = (torchvision.datasets.cifar, torchvision.datasets.svhn, torchvision.datasets.flowers102)
    saved = [m.check_integrity for m in modules]
    for m in modules:
        m.check_integrity = lambda *args, **kwargs: True
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.check_integrity = original
