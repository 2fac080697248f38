"""The decode-once tensor cache and the seeded stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vpcost_utils import paths
from vpcost_utils.data.base import ImageSplit
from vpcost_utils.data.cache import cache_file, cached_split, decode_images, load_cached, save_split
from vpcost_utils.data.splits import stratified_split


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path / "home"))


def _split(n: int = 7, size: int = 8, seed: int = 0) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return ImageSplit("toy", "train", images, labels, ["a", "b", "c"])


def test_cache_file_is_keyed_by_dataset_split_size_and_version():
    base = cache_file("cifar10", "train", 32, "1")
    assert base.parent == paths.tensors_dir()
    others = {cache_file("svhn", "train", 32, "1"), cache_file("cifar10", "test", 32, "1"),
              cache_file("cifar10", "train", 224, "1"), cache_file("cifar10", "train", 32, "2")}
    assert base not in others and len(others) == 4


def test_save_then_load_round_trips_exactly_and_leaves_no_temp_file():
    data = _split()
    path = cache_file("toy", "train", 8, "1")
    save_split(data, path, "1")
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    back = load_cached(path, "toy", "train", 8, "1")
    assert torch.equal(back.images, data.images) and back.images.dtype == torch.uint8
    assert torch.equal(back.labels, data.labels) and back.labels.dtype == torch.int64
    assert back.classes == ["a", "b", "c"] and (back.name, back.split) == ("toy", "train")


def test_cached_split_builds_once_then_reads_the_file():
    calls = []

    def build() -> ImageSplit:
        calls.append(1)
        return _split(seed=len(calls))

    first = cached_split("toy", "train", 8, "1", build)
    second = cached_split("toy", "train", 8, "1", build)
    assert len(calls) == 1
    assert torch.equal(first.images, second.images)
    cached_split("toy", "train", 8, "2", build)  # a new version is a new key
    assert len(calls) == 2


def test_a_corrupt_or_foreign_cache_file_is_rebuilt_not_trusted():
    path = cache_file("toy", "train", 8, "1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable tensor cache"):
        data = cached_split("toy", "train", 8, "1", lambda: _split(seed=3))
    assert torch.equal(data.images, _split(seed=3).images)
    # a file saved under another key (e.g. copied by hand) is not read as this one
    other = _split(seed=4)
    save_split(ImageSplit("toy", "test", other.images, other.labels, other.classes), cache_file("toy", "test", 8, "1"),
               "1")
    cache_file("toy", "test", 8, "1").rename(path)
    with pytest.warns(UserWarning, match="built for"):
        assert load_cached(path, "toy", "train", 8, "1") is None


class _Pictures(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].clone()


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_images_keeps_order_across_batches_and_workers(workers):
    images = _split(n=21).images
    out = decode_images(_Pictures(images), len(images), 8, desc="toy", workers=workers, batch_size=4)
    assert out.dtype == torch.uint8 and torch.equal(out, images)


def test_decode_images_rejects_a_short_dataset():
    with pytest.raises(RuntimeError, match="decoded 5 images, expected 6"):
        decode_images(_Pictures(_split(n=5).images), 6, 8, desc="toy", workers=0)


def _labels() -> np.ndarray:
    # uneven classes: 50, 30, 20
    return np.repeat(np.arange(3), [50, 30, 20])[np.random.RandomState(5).permutation(100)]


def test_stratified_split_is_disjoint_complete_and_keeps_class_shares():
    labels = _labels()
    train, test = stratified_split(labels, 0.1, seed=1)
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert len(set(train) & set(test)) == 0
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert len(test) == 10
    assert np.bincount(labels[test], minlength=3).tolist() == [5, 3, 2]


def test_stratified_split_is_deterministic_by_seed():
    labels = _labels()
    a, b = stratified_split(labels, 0.2, seed=1), stratified_split(labels, 0.2, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = stratified_split(labels, 0.2, seed=2)
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_stratified_split_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(_labels(), 1.0, seed=1)
