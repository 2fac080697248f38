"""N-shot sampling, as the reference does it (reference-algorithms.md §1f).

Per class in ascending label order: shuffle that class's indices with the numpy RNG seeded by
the run seed, keep the first N (all when the class has fewer), then shuffle the concatenation.
One ``numpy.random.RandomState(seed)`` plays the role of the reference's globally seeded RNG.
"""

from __future__ import annotations

import numpy as np
import torch


def largest_class(labels: torch.Tensor) -> int:
    """Training images in the largest class: an N above it is the full-data run, not an N-shot one."""
    return int(torch.bincount(labels.to(torch.long)).max())


def sample_n_shots(labels: torch.Tensor, n_shots: int | None, seed: int) -> torch.Tensor:
    """Indices of an N-shot subset (all indices, in order, when ``n_shots`` is None)."""
    labels_np = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if n_shots is None:
        return torch.arange(len(labels_np))
    if n_shots < 1:
        raise ValueError(f"n_shots must be >= 1 or None, got {n_shots}")
    rng = np.random.RandomState(seed)
    chosen = []
    for c in np.unique(labels_np):
        index = np.flatnonzero(labels_np == c)
        rng.shuffle(index)
        chosen.append(index[:n_shots])
    picked = np.concatenate(chosen)
    rng.shuffle(picked)
    return torch.from_numpy(picked.astype(np.int64))


def hold_out(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out indices, remaining indices): ``per_class`` images of every class, seeded, sorted.

    Drawn before the N-shot sample, from its own RNG stream (``seed`` + a constant), so a dense and a
    compressed run with the same seed hold out the same images and then draw the same N shots from the
    rest. Used to fit a temperature on labelled images that are neither trained on nor tested on.
    """
    labels_np = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    rng = np.random.RandomState(seed + 7919)
    held = []
    for c in np.unique(labels_np):
        index = np.flatnonzero(labels_np == c)
        if len(index) <= per_class:
            raise ValueError(f"class {c} has {len(index)} training images: cannot hold out {per_class} and still "
                             f"train on it; lower holdout or use a dataset with more images per class")
        held.append(rng.permutation(index)[:per_class])
    held_idx = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(labels_np)), held_idx)
    return torch.from_numpy(held_idx.astype(np.int64)), torch.from_numpy(rest.astype(np.int64))
