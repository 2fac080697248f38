"""One instruction-set level for the three libraries that pick a CPU's arithmetic, set before torch uses a kernel.

A CPU run's numbers are decided by three dispatchers, each of which picks its code path from the processor:
PyTorch's own vectorised kernels (``ATEN_CPU_CAPABILITY``), MKL's BLAS (``MKL_CBWR``, its conditional numerical
reproducibility mode) and oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``). Few-shot prompt training is chaotic, so a
changed summation order moves a 16-epoch run by 3-5 points (docs/reproduction.md, "Same spec, same answer").

``VPCOST_ARITHMETIC`` names the pin (default ``avx2``, the level every x86 machine of this project runs):

- ``avx2``: all three dispatchers at AVX2. Measured: run 15fa03f325ef gives the same record on an AVX2-only AMD EPYC
  (unpinned) and on an AVX-512 EPYC (pinned). Not enough on the AVX-512/AMX Xeon: with every code path at AVX2
  (oneDNN's and MKL's verbose modes say so) it still gives another number, because oneDNN sizes its convolution
  blocks from the cache sizes it reads off the processor (oneDNN issue 1443, PR 4021). So a record made under this
  pin is keyed by the processor's vendor and per-core L1d / L2 sizes too (``arithmetic.arithmetic_key``).
- ``avx2-strict``: as ``avx2`` and oneDNN off (``torch.backends.mkldnn``): convolutions go through PyTorch's own
  kernels and MKL in its strict reproducible mode, removing the one dispatcher known to block by cache size.
  About 7x slower on Lite0 (docs/benchmarks.md); identity across vendors is expected, not yet measured.
- ``avx512``: all three at AVX-512 (refused on a machine without it).
- ``native``: no pin (each library's best code for this processor): fastest, keyed by processor model.

This module imports nothing heavy: the package's ``__init__`` calls ``apply()`` before anything imports torch, so
the environment is in place when each library first reads it (ATen at its first dispatched kernel, MKL and oneDNN
at their first call). A process that used torch kernels before importing vpcost_utils cannot be pinned any more;
``arithmetic.pin_state`` sees that (PyTorch reports another capability) and the record says the pin was not
honoured, which keys it apart.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

PIN_ENV = "VPCOST_ARITHMETIC"
DEFAULT_PIN = "avx2"
SET_ENV = "VPCOST_ARITHMETIC_SET"  # the variables apply() put into the environment, so a child can take them back

#: Each pin: the environment it sets, PyTorch's capability name under it, the /proc/cpuinfo flags it needs, and
#: whether oneDNN stays on. None: no pin.
PINS: dict[str, dict | None] = {
    "avx2": {"env": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
             "capability": "AVX2", "flags": ("avx2", "fma"), "onednn": True},
    "avx2-strict": {"env": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                    "capability": "AVX2", "flags": ("avx2", "fma"), "onednn": False},
    "avx512": {"env": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
               "capability": "AVX512", "flags": ("avx512f", "avx512bw", "avx512vl", "avx512dq"), "onednn": True},
    "native": None,
}


def requested() -> str:
    """The pin this process asks for (``VPCOST_ARITHMETIC``, default ``avx2``), unchecked."""
    return os.environ.get(PIN_ENV, DEFAULT_PIN).strip().lower() or DEFAULT_PIN


@lru_cache(maxsize=1)
def cpu_facts() -> dict:
    """The processor as the arithmetic sees it: vendor, model name, ISA flags, per-core L1d and L2 sizes (bytes).

    Read from /proc/cpuinfo and /sys (Linux); elsewhere what ``platform`` knows, with no flags or caches."""
    facts: dict = {"arch": platform.machine(), "vendor": None, "model": platform.processor() or None,
                   "flags": (), "l1d": None, "l2": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return facts
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "vendor_id" and facts["vendor"] is None:
            facts["vendor"] = value
        elif key == "model name" and (facts["model"] is None or facts["model"] == facts["arch"]):
            facts["model"] = value
        elif key == "flags" and not facts["flags"]:
            facts["flags"] = tuple(value.split())
        elif key == "processor" and value != "0":
            break  # the first processor describes them all on the machines we run on
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            size = _bytes((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        if level == "1" and kind == "Data":
            facts["l1d"] = size
        elif level == "2":
            facts["l2"] = size
    return facts


def _bytes(size: str) -> int:
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def problem(pin: str | None = None) -> str | None:
    """Why ``pin`` cannot run on this machine (an unknown name, an ISA it lacks), or None."""
    pin = requested() if pin is None else pin
    if pin not in PINS:
        return (f"{PIN_ENV}={pin!r} is not a known arithmetic pin; use one of {', '.join(PINS)} "
                f"(default {DEFAULT_PIN}; native = no pin, fastest, keyed by processor model)")
    spec = PINS[pin]
    if spec is None:
        return None
    facts = cpu_facts()
    if facts["arch"] not in ("x86_64", "AMD64") :
        return None  # not refused: the run goes on unpinned and its record says so (pin_state)
    missing = [flag for flag in spec["flags"] if flag not in facts["flags"]]
    if facts["flags"] and missing:
        return (f"{PIN_ENV}={pin} needs the CPU flags {', '.join(missing)}, which this processor "
                f"({facts['model']}) lacks; use {PIN_ENV}=avx2 (every x86 machine of this project) or native")
    return None


def apply() -> None:
    """Put the requested pin into the environment for the libraries to read at their first use.

    Silent on a bad value: importing the package must not fail (``--help`` and the tests import it); every run
    checks ``problem()`` before any work (``arithmetic.fixed_arithmetic``) and refuses it there, naming the fix.
    """
    # What an earlier apply() set (this process's parent, say, under another pin) is taken back first: a child
    # asked to run native must not inherit its parent's AVX2 settings. A variable the user set stays.
    for name in filter(None, os.environ.pop(SET_ENV, "").split(",")):
        os.environ.pop(name, None)
    pin = requested()
    if problem(pin) is not None or PINS.get(pin) is None or cpu_facts()["arch"] not in ("x86_64", "AMD64"):
        return
    os.environ.update(PINS[pin]["env"])
    os.environ[SET_ENV] = ",".join(PINS[pin]["env"])
