"""The allocator setting: freed blocks stay mapped (no page faults when they are reused), bad input is named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vpcost_utils import allocator
from vpcost_utils.errors import VpcostError

# A child process sets its allocator as a run does, then allocates, touches and frees a 64 MB block ten
# times (a backbone's activations, step after step) and reports the minor page faults that took.
_CHILD = """
import ctypes, json, resource
from vpcost_utils.allocator import keep_freed_memory
setting = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
print(json.dumps({"setting": setting, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD], env={"VPCOST_MALLOC": mode, "PATH": ""},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not allocator.on_glibc(), reason="glibc only")
def test_kept_memory_is_faulted_in_once_not_at_every_reuse():
    pages = (64 << 20) // 4096
    default, keep = _faults("default"), _faults("keep")
    assert default["setting"] == "glibc: defaults" and keep["setting"].startswith("glibc: mmap_max=0")
    assert default["faults"] > 8 * pages  # glibc's defaults: mmap and munmap, faulted in again every time
    assert keep["faults"] < 2 * pages  # kept: faulted in by the first use only


def test_an_unknown_mode_is_named_with_the_choices(monkeypatch):
    monkeypatch.setenv(allocator.MODE_ENV, "jemalloc")
    with pytest.raises(VpcostError, match="VPCOST_MALLOC='jemalloc'.*keep, default"):
        allocator.mode()
