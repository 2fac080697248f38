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

Both are part of a record's identity: a record made on another thread count or, on a CPU, another kernel
set is stale (``store.ResultStore.stale``) and is made again rather than reused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

THREADS_ENV = "VPCOST_RUN_THREADS"


def cpu_kernels() -> str:
    """The vectorised kernel set PyTorch uses on this CPU (``"AVX2"``, ``"AVX512"``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def arithmetic_block(threads: int, device_type: str = "cpu") -> dict[str, Any]:
    """The ``arithmetic`` block of a run's record: its threads and, on a CPU, its kernel set."""
    return {"threads": threads, "cuda_deterministic": device_type == "cuda",
            "cpu_kernels": cpu_kernels() if device_type == "cpu" else None}


def run_threads() -> int:
    """Intra-op threads every run trains on: ``VPCOST_RUN_THREADS``, default 1."""
    raw = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        from .errors import VpcostError

        raise VpcostError(f"{THREADS_ENV}={raw!r} must be a positive integer (threads per run; unset it for 1)")
    return threads


@contextmanager
def fixed_arithmetic(device: str | torch.device) -> Iterator[dict[str, Any]]:
    """Pin the threads (and, on CUDA, deterministic kernels) for one run; yields what is recorded."""
    device = torch.device(device)
    threads = run_threads()
    before = torch.get_num_threads()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield arithmetic_block(threads, device.type)
    finally:
        torch.set_num_threads(before)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        torch.use_deterministic_algorithms(deterministic_before)
