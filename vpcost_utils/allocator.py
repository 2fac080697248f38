"""Keep freed memory in the process instead of handing it back to the kernel after every training step.

glibc's malloc serves every block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed, and trims the heap's free top whenever it passes the trim threshold.
A frozen backbone's activations are exactly such blocks, made and freed at every step, so each step faults
its pages in again: a 16-epoch MNIST N=50 run on this repository's AMD EPYC took 55 million minor page
faults and spent 131 of its 343 s in the kernel (docs/benchmarks.md). With no mmap'd blocks and a trim
threshold of 2 GB the freed pages stay mapped and are reused: the same run's first 4 epochs went from
106.0 s to 67.5 s of wall time (system time 44.7 s to 5.0 s) with bit-identical records, for about 0.6 GB
more resident memory. jemalloc (LD_PRELOAD) was slower than glibc's defaults here (189 s) and transparent
huge pages (``THP_MEM_ALLOC_ENABLE``) barely helped (103.5 s), so we set glibc's own two knobs.

The allocator decides where memory lives, never what is computed, so the setting is not part of a run's
identity; the record names it beside the run's threads for the reader of its wall time. Other C libraries
(musl, macOS, Windows) are left alone. ``VPCOST_MALLOC=default`` keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform

from .errors import VpcostError

MODE_ENV = "VPCOST_MALLOC"
MODES = ("keep", "default")
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int: the largest threshold it can set
_applied: str | None = None


def mode() -> str:
    """``VPCOST_MALLOC``: ``keep`` (default) or ``default`` (glibc's own settings)."""
    value = os.environ.get(MODE_ENV, "keep")
    if value not in MODES:
        raise VpcostError(f"{MODE_ENV}={value!r} is not one of {', '.join(MODES)} (unset it for 'keep')")
    return value


def on_glibc() -> bool:
    """Whether this process's C library is glibc (the only one whose malloc this module sets)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> str:
    """Set this process's malloc to keep freed memory (once; later calls return what was set) and say what
    it uses: ``"glibc: mmap_max=0, trim_threshold=2147483647"``, ``"glibc: defaults"`` or ``"not glibc"``."""
    global _applied
    if _applied is not None:
        return _applied
    wanted = mode()  # a bad VPCOST_MALLOC is named on every platform, not only where it would act
    if not on_glibc():
        _applied = "not glibc"
    elif wanted == "default":
        _applied = "glibc: defaults"
    else:
        libc = ctypes.CDLL(None)
        # mallopt returns 1 on success; order matters little, both apply to later allocations only
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
        _applied = f"glibc: mmap_max=0, trim_threshold={_TRIM_THRESHOLD}" if ok else "glibc: defaults (mallopt failed)"
    return _applied
