"""Seeded stratified train/test splits for datasets that ship without one (EuroSAT, Caltech101).

The split is scikit-learn's ``train_test_split(..., stratify=labels, random_state=seed)`` over the
sample indices, which is the call the authors' fork makes for EuroSAT (``test_size=0.1``,
``random_state=1``; reference-algorithms.md §1e). The partition depends only on the labels, the
fraction and the seed, never on the images, so it is the split the fork meant to use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(labels: Sequence[int] | np.ndarray, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, test), keeping each class's share in both.

    Args:
        labels: one integer class label per sample, in dataset order.
        test_fraction: share of the samples that go to the test split, in (0, 1).
        seed: ``random_state`` of the shuffle; the same labels and seed give the same split.

    Returns:
        Two int64 index arrays into ``labels``, disjoint and covering every sample, in the order
        scikit-learn returns them (shuffled), as the fork's intended code would have kept them.
    """
    from sklearn.model_selection import train_test_split  # imported here: scikit-learn is slow to import

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    train, test = train_test_split(np.arange(len(labels), dtype=np.int64), test_size=test_fraction,
                                   stratify=labels, random_state=seed)
    return train, test
