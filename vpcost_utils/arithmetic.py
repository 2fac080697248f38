"""What decides a run's floating-point arithmetic, fixed for the run and written into its record.

A spec must give the same numbers whatever runs it: the serial runner (torch's default threads),
a process-pool worker (one thread each) or a cluster job (its CPUs). On a CPU the summation order
of a convolution follows the intra-op thread count, and few-shot prompt training is chaotic enough
that this alone moved one 16-epoch MNIST run from 31.1 % to 27.1 % (docs/mini-study.md). So every
run trains on ``VPCOST_RUN_THREADS`` threads (default 1: two one-thread runs side by side beat one
two-thread run on this machine, docs/benchmarks.md), whatever the process had, and restores the
process's setting afterwards. On CUDA, cuDNN autotuning is off and deterministic kernels are asked
for where PyTorch has them (``warn_only``: an op without one warns and stays nondeterministic).

The CPU's kernel set decides it too: PyTorch picks its vectorised kernels by what the processor offers
(``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...), and they sum in other orders. The same
one-thread recovery recipe built on an AVX-512 Intel Xeon (2026-12-04) and on an AVX2-only AMD EPYC
(2026-12-07) gave two different models (59.4 % and 58.6 % top-1 agreement with the dense model at 224 px,
docs/models.md). So a CPU run records its kernel set beside its thread count.

The kernel set alone is too coarse a key: three libraries dispatch by processor (PyTorch, MKL, oneDNN), and two
machines whose PyTorch capability is AVX512 (the Xeon and an AVX-512 EPYC) gave one spec 45.2 % and 40.3 %. So every
CPU run is pinned to one instruction-set level (``cpu_pin.py``, default AVX2) and its record carries the pin, whether
it held, the processor and the ``key`` that says which records compute alike (``arithmetic_key``).

Both are part of a record's identity: a record made on another thread count or, on a CPU, under another arithmetic
key is stale (``store.ResultStore.stale``) and is made again rather than reused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from . import cpu_pin
from .errors import VpcostError

THREADS_ENV = "VPCOST_RUN_THREADS"


def cpu_kernels() -> str:
    """The vectorised kernel set PyTorch uses on this CPU (``"AVX2"``, ``"AVX512"``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def pin_state() -> tuple[str, bool]:
    """(the requested pin, whether this process runs under it).

    Held when every variable of the pin is in the environment and PyTorch reports the pin's capability: a process
    that dispatched a kernel before the package set the pin shows its native capability instead (and MKL and oneDNN
    have then most likely read their settings too). ``native`` always holds; a non-x86 machine never holds a pin.
    """
    pin = cpu_pin.requested()
    spec = cpu_pin.PINS.get(pin)
    if spec is None:
        return pin, pin == "native"
    held = (cpu_pin.cpu_facts()["arch"] in ("x86_64", "AMD64") and cpu_kernels() == spec["capability"]
            and all(os.environ.get(k) == v for k, v in spec["env"].items()))
    return pin, held


def _slug(text: str | None) -> str:
    return "".join(c if c.isalnum() else "-" for c in (text or "unknown").lower()).strip("-")


def arithmetic_key() -> str:
    """Which CPU records compute alike: equal keys, equal numbers for one spec (threads aside, keyed separately).

    Under a held pin: the pin, the vendor and the per-core L1d / L2 sizes (oneDNN blocks convolutions by the cache
    sizes it reads off the processor, so even pinned, the Xeon and the EPYCs differ; cpu_pin.py). ``avx2-strict``
    turns oneDNN off and is keyed by pin and vendor. Unpinned (``native`` or a pin that did not hold): PyTorch's
    kernel set and the processor's model name.
    """
    pin, held = pin_state()
    facts = cpu_pin.cpu_facts()
    if held and cpu_pin.PINS.get(pin) is not None:
        vendor = _slug(facts["vendor"])
        if not cpu_pin.PINS[pin]["onednn"]:
            return f"pin-{pin}-{vendor}"
        caches = f"l1d{(facts['l1d'] or 0) // 1024}k-l2-{(facts['l2'] or 0) // 1024}k"
        return f"pin-{pin}-{vendor}-{caches}"
    return f"native-{cpu_kernels().lower()}-{_slug(facts['model'])}"


def arithmetic_block(threads: int, device_type: str = "cpu") -> dict[str, Any]:
    """The ``arithmetic`` block of a run's record: its threads and, on a CPU, the pin, the processor and the key."""
    block: dict[str, Any] = {"threads": threads, "cuda_deterministic": device_type == "cuda",
                             "cpu_kernels": cpu_kernels() if device_type == "cpu" else None}
    if device_type == "cpu":
        pin, held = pin_state()
        facts = cpu_pin.cpu_facts()
        block.update(pin=pin, pin_held=held, key=arithmetic_key(), cpu_vendor=facts["vendor"],
                     cpu_model=facts["model"], cpu_caches={"l1d": facts["l1d"], "l2": facts["l2"]})
    return block


def check_pin() -> None:
    """Refuse, before any work, a pin that is unknown or that this processor cannot run."""
    why = cpu_pin.problem()
    if why is not None:
        raise VpcostError(why)


def run_threads() -> int:
    """Intra-op threads every run trains on: ``VPCOST_RUN_THREADS``, default 1."""
    raw = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise VpcostError(f"{THREADS_ENV}={raw!r} must be a positive integer (threads per run; unset it for 1)")
    return threads


@contextmanager
def fixed_arithmetic(device: str | torch.device) -> Iterator[dict[str, Any]]:
    """Pin the threads (and, on CUDA, deterministic kernels) for one run; yields what is recorded."""
    device = torch.device(device)
    threads = run_threads()
    if device.type == "cpu":
        check_pin()
    spec = cpu_pin.PINS.get(cpu_pin.requested()) if device.type == "cpu" else None
    onednn_before = torch.backends.mkldnn.enabled
    before = torch.get_num_threads()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        torch.use_deterministic_algorithms(True, warn_only=True)
    if spec is not None and not spec["onednn"]:
        torch.backends.mkldnn.enabled = False  # avx2-strict: no cache-size-blocked convolutions (cpu_pin.py)
    try:
        yield arithmetic_block(threads, device.type)
    finally:
        torch.set_num_threads(before)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        torch.use_deterministic_algorithms(deterministic_before)
        torch.backends.mkldnn.enabled = onednn_before
