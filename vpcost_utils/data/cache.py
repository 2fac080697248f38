"""Decode a dataset split once into a uint8 tensor file, then read that file on every later load.

A cache file holds ``images`` (uint8 ``[N, 3, H, W]``), ``labels`` (int64 ``[N]``), ``classes``
and the key it was built for. It lives in ``paths.tensors_dir()`` and is named by dataset, split,
input size and a version string, so a change to how a dataset is decoded or split (bump its
version) never reads a stale file. Files are written to a temporary name and moved into place
with ``os.replace``, so a killed decode leaves no half-written cache behind.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import paths
from .._io import atomic_torch_save
from .base import ImageSplit

T = TypeVar("T")


def cache_file(name: str, split: str, size: int, version: str) -> Path:
    """Where the decoded tensors of one (dataset, split, size, version) live."""
    return paths.tensors_dir() / f"{name}_{split}_{size}px_v{version}.pt"


def save_split(data: ImageSplit, path: Path, version: str) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    payload = {"images": data.images.contiguous(), "labels": data.labels.to(torch.int64).contiguous(),
               "classes": list(data.classes), "name": data.name, "split": data.split,
               "size": data.input_size, "version": version}
    atomic_torch_save(payload, path)
    return path


def read_cache(path: Path, key: dict[str, Any], what: str, make: Callable[[dict[str, Any]], T]) -> T | None:
    """``make(payload)`` of cache file ``path``, or None when it is absent, unreadable or built for another key.

    ``key`` holds the payload entries that must match (e.g. name, split, size, version). Shared by the
    uint8 split cache here and the CLIP image cache (``clip.images``), whose payloads differ.
    """
    if not path.is_file():
        return None
    try:
        # mmap: a large split is paged in as it is used instead of being copied up front
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        found = {k: payload[k] for k in key}
        if found != key:
            raise ValueError(f"built for {tuple(found.values())}")
        return make(payload)
    # any unreadable or foreign cache is rebuilt from the raw files, never trusted
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as err:
        warnings.warn(f"ignoring unreadable {what} {path} ({err}); decoding again", stacklevel=3)
        return None


def load_cached(path: Path, name: str, split: str, size: int, version: str) -> ImageSplit | None:
    """Read a cache file, or return None when it is absent, unreadable or built for another key."""
    return read_cache(path, {"name": name, "split": split, "size": size, "version": version}, "tensor cache",
                      lambda p: ImageSplit(name, split, p["images"], p["labels"], list(p["classes"])))


def cached_split(name: str, split: str, size: int, version: str, build: Callable[[], ImageSplit]) -> ImageSplit:
    """Return the cached split, calling ``build`` (and caching its result) only on the first load."""
    path = cache_file(name, split, size, version)
    data = load_cached(path, name, split, size, version)
    if data is None:
        data = build()
        save_split(data, path, version)
    return data


def decode_workers(n: int) -> int:
    """DataLoader workers for decoding ``n`` images: none for small sets, a few otherwise.

    ``VPCOST_DECODE_WORKERS`` overrides. Worker start-up costs about a second, more than a few
    hundred images take to decode, hence no workers below 1,000 images.
    """
    if "VPCOST_DECODE_WORKERS" in os.environ:
        return max(0, int(os.environ["VPCOST_DECODE_WORKERS"]))
    return 0 if n < 1000 else min(4, os.cpu_count() or 1)


def decode_images(images: Dataset, n: int, size: int, *, desc: str, workers: int | None = None,
                  batch_size: int = 64) -> torch.Tensor:
    """Run ``images`` (item i: uint8 ``[3, size, size]``) through a DataLoader into one uint8 tensor.

    Args:
        images: a map-style dataset of ``n`` uint8 image tensors, all ``size`` x ``size``.
        n: number of images.
        size: their height and width.
        desc: label of the progress bar.
        workers: DataLoader workers; ``decode_workers(n)`` when None.
        batch_size: images per DataLoader batch.
    """
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    workers = decode_workers(n) if workers is None else workers
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=workers)
    start = 0
    with tqdm(total=n, desc=desc, unit="img") as bar:
        for batch in loader:
            out[start:start + len(batch)] = batch
            start += len(batch)
            bar.update(len(batch))
    if start != n:
        raise RuntimeError(f"{desc}: decoded {start} images, expected {n}")
    return out
