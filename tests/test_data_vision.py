"""The eight torchvision-backed paper datasets, read from tiny fake copies written here in each real layout.

Every fake dataset is laid out exactly as torchvision expects the real files (pickled CIFAR batches,
SVHN .mat, GTSRB folders + csv, ...). Only torchvision's md5 checks are switched off, since a fake
file cannot match the real checksum. Pixels are compared with the reference transform
(``Resize((s, s))`` + ``ToTensor()`` on the PIL image) for exact equality.
"""

from __future__ import annotations

import pickle
import shutil
import socket
import urllib.error
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.flowers102
import torchvision.datasets.svhn
from PIL import Image
from sklearn.model_selection import train_test_split
from torchvision import transforms

from vpcost_utils import paths
from vpcost_utils.data import vision  # noqa: F401  (registers the datasets)
from vpcost_utils.data.base import get_dataset_info, load_split
from vpcost_utils.errors import MissingFileError

PAPER = {"cifar10": (32, 10), "svhn": (32, 10), "gtsrb": (32, 43), "dtd": (128, 47), "flowers102": (128, 102),
         "oxford_pets": (128, 37), "eurosat": (128, 10), "caltech101": (128, 101)}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VPCOST_DATA", raising=False)
    monkeypatch.setenv("VPCOST_OFFLINE", "1")  # tests never reach for the network unless they say so
    for module in (torchvision.datasets.cifar, torchvision.datasets.svhn, torchvision.datasets.flowers102):
        monkeypatch.setattr(module, "check_integrity", lambda *a, **k: True)


def _noise(rng: np.random.RandomState, h: int, w: int, mode: str = "RGB") -> Image.Image:
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode)


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _sizes(rng: np.random.RandomState) -> tuple[int, int]:
    # mostly upsampled to 128, sometimes downsampled (antialiasing matters there)
    return (int(rng.randint(20, 60)), int(rng.randint(20, 60))) if rng.rand() < 0.7 else (150, 170)


def _reference(path: Path, size: int) -> torch.Tensor:
    """The authors' transform: PIL -> RGB -> Resize((size, size)) -> ToTensor."""
    return transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])(
        Image.open(path).convert("RGB"))


def _assert_matches(data, files: list[Path], labels: list[int], size: int) -> None:
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert tuple(data.images.shape) == (len(files), 3, size, size)
    assert data.labels.tolist() == labels
    for image, path in zip(data.images, files, strict=True):
        assert torch.equal(image.float() / 255, _reference(path, size)), path


# ----------------------------------------------------------------------------- fake datasets on disk

def _fake_dtd(root: Path, rng) -> dict:
    classes = ["banded", "dotted", "zigzagged"]
    out = {}
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        lines, files, labels = [], [], []
        for label, cls in enumerate(classes):
            for _ in range(count):
                name = f"{cls}_{len(list((root / 'dtd/dtd/images' / cls).glob('*.jpg'))) + 1:04d}.jpg"
                files.append(_save(_noise(rng, *_sizes(rng)), root / "dtd/dtd/images" / cls / name))
                lines.append(f"{cls}/{name}")
                labels.append(label)
        (root / "dtd/dtd/labels").mkdir(parents=True, exist_ok=True)
        (root / f"dtd/dtd/labels/{split}1.txt").write_text("\n".join(lines) + "\n")
        out[split] = (files, labels)
    return {"train": out["train"], "test": out["test"], "classes": classes}


def _fake_flowers(root: Path, rng) -> dict:
    base = root / "flowers-102"
    labels = [1, 2, 3, 3, 1, 2, 2, 1, 3]  # 1-based, as in imagelabels.mat
    files = [_save(_noise(rng, *_sizes(rng)), base / "jpg" / f"image_{i:05d}.jpg") for i in range(1, 10)]
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    ids = {"trnid": [3, 1, 2], "valid": [4, 5], "tstid": [9, 6, 7, 8]}
    scipy.io.savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})
    pick = {s: ([files[i - 1] for i in ids[k]], [labels[i - 1] - 1 for i in ids[k]])
            for s, k in (("train", "trnid"), ("test", "tstid"))}
    return {**pick, "classes": list(torchvision.datasets.Flowers102.classes)}


def _fake_pets(root: Path, rng) -> dict:
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 3, 1)]  # (file prefix, class id, species)
    out = {}
    for split, count in (("trainval", 2), ("test", 1)):
        lines, files, labels = [], [], []
        for prefix, cid, species in breeds:
            for _ in range(count):
                n = len(list((base / "images").glob(f"{prefix}_*.jpg"))) + 1
                files.append(_save(_noise(rng, *_sizes(rng)), base / "images" / f"{prefix}_{n}.jpg"))
                lines.append(f"{prefix}_{n} {cid} {species} {n}")
                labels.append(cid - 1)
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / f"annotations/{split}.txt").write_text("\n".join(lines) + "\n")
        out["train" if split == "trainval" else split] = (files, labels)
    return {**out, "classes": ["Abyssinian", "American Bulldog", "Bengal"]}


def _fake_gtsrb(root: Path, rng) -> dict:
    base = root / "gtsrb"
    train_files, train_labels = [], []
    for cid in range(43):  # torchvision numbers classes by folder, so all 43 folders must exist
        for k in range(2 if cid in (0, 42) else 1):
            path = base / "GTSRB/Training" / f"{cid:05d}" / f"{k:05d}_00000.ppm"
            train_files.append(_save(_noise(rng, int(rng.randint(25, 60)), int(rng.randint(25, 60))), path))
            train_labels.append(cid)
    rows, test_files, test_labels = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"], [], []
    for i, cid in enumerate([14, 0, 42, 14, 7]):
        test_files.append(_save(_noise(rng, 40, 33), base / "GTSRB/Final_Test/Images" / f"{i:05d}.ppm"))
        rows.append(f"{i:05d}.ppm;33;40;5;5;28;35;{cid}")
        test_labels.append(cid)
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return {"train": (train_files, train_labels), "test": (test_files, test_labels), "classes": vision.GTSRB_CLASSES}


BUILDERS = {"dtd": (_fake_dtd, 128), "flowers102": (_fake_flowers, 128), "oxford_pets": (_fake_pets, 128),
            "gtsrb": (_fake_gtsrb, 32)}


def _fake_cifar(root: Path, rng) -> dict:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    out = {"train": ([], []), "test": ([], [])}
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = 3 if fname != "test_batch" else 4
        data = rng.randint(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.randint(0, 10, n).tolist()
        (base / fname).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        arrays, ys = out["test" if fname == "test_batch" else "train"]
        arrays.extend(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.extend(labels)
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return {**out, "classes": names}


def _fake_svhn(root: Path, rng) -> dict:
    root.mkdir(parents=True)
    out = {}
    for split, n in (("train", 7), ("test", 5)):
        x = rng.randint(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([10, 1, 2, 9, 10, 3, 5][:n], dtype=np.uint8)[:, None]  # SVHN writes digit 0 as 10
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = ([x[..., i] for i in range(n)], [int(v) % 10 for v in y[:, 0]])
    return out


EUROSAT = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]


def _fake_eurosat(root: Path, rng) -> dict[Path, int]:
    return {_save(_noise(rng, 64, 64), root / "eurosat/2750" / cls / f"{cls}_{i}.jpg"): label
            for label, cls in enumerate(EUROSAT) for i in range(1, 11)}


CALTECH = {"Faces": 10, "Leopards": 5, "accordion": 5, "yin_yang": 10}


def _fake_caltech(root: Path, rng) -> dict[Path, int]:
    base = root / "caltech101/101_ObjectCategories"
    for i in range(1, 4):
        _save(_noise(rng, 30, 30), base / "BACKGROUND_Google" / f"image_{i:04d}.jpg")
    files = {}
    for label, (cls, n) in enumerate(sorted(CALTECH.items())):
        for i in range(1, n + 1):
            mode = "L" if i % 3 == 0 else "RGB"  # Caltech101 has grey images
            files[_save(_noise(rng, *_sizes(rng), mode=mode), base / cls / f"image_{i:04d}.jpg")] = label
    return files


# ----------------------------------------------------------------------------- tests

def test_the_eight_paper_datasets_are_registered_with_their_input_sizes():
    for name, (size, k) in PAPER.items():
        info = get_dataset_info(name)
        assert (info.input_size, info.num_classes, info.offline) == (size, k, False), name
        assert info.notes
    notes = get_dataset_info("eurosat").notes
    assert "27,000" in notes and "random_state=1" in notes and "test_size=0.1" in notes
    assert "BACKGROUND_Google" in get_dataset_info("caltech101").notes
    assert "never released" in get_dataset_info("caltech101").notes


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_file_datasets_match_the_reference_transform_exactly(name, tmp_path):
    build, size = BUILDERS[name]
    root = tmp_path / "raw" / name
    truth = build(root, np.random.RandomState(0))
    for split in ("train", "test"):
        data = load_split(name, split, root=str(root))
        _assert_matches(data, *truth[split], size)
        assert data.classes == truth["classes"]
        assert data.input_size == size and (data.name, data.split) == (name, split)


def test_cifar10_keeps_native_pixels_and_meta_class_names(tmp_path):
    root = tmp_path / "raw"
    truth = _fake_cifar(root, np.random.RandomState(1))
    for split in ("train", "test"):
        data = load_split("cifar10", split, root=str(root))
        arrays, labels = truth[split]
        assert tuple(data.images.shape) == (len(arrays), 3, 32, 32) and data.images.dtype == torch.uint8
        assert data.labels.tolist() == labels and data.classes == truth["classes"]
        for image, array in zip(data.images, arrays, strict=True):
            assert torch.equal(image.float() / 255, transforms.ToTensor()(Image.fromarray(array)))
    # another size (e.g. for CLIP) resizes the original 32-px image
    big = load_split("cifar10", "test", root=str(root), size=40)
    ref = transforms.Compose([transforms.Resize((40, 40)), transforms.ToTensor()])
    assert tuple(big.images.shape) == (4, 3, 40, 40)
    for image, array in zip(big.images, truth["test"][0], strict=True):
        assert torch.equal(image.float() / 255, ref(Image.fromarray(array)))


def test_svhn_maps_label_10_to_digit_0_and_keeps_native_pixels(tmp_path):
    root = tmp_path / "raw"
    truth = _fake_svhn(root, np.random.RandomState(2))
    for split in ("train", "test"):
        data = load_split("svhn", split, root=str(root))
        arrays, labels = truth[split]
        assert data.labels.tolist() == labels and 0 in labels and 10 not in data.labels.tolist()
        assert data.classes == [str(d) for d in range(10)]
        assert tuple(data.images.shape) == (len(arrays), 3, 32, 32)
        for image, array in zip(data.images, arrays, strict=True):
            assert torch.equal(image.float() / 255, transforms.ToTensor()(Image.fromarray(array)))


def test_size_override_resizes_from_the_original_image(tmp_path):
    root = tmp_path / "raw"
    truth = _fake_flowers(root, np.random.RandomState(3))
    data = load_split("flowers102", "test", root=str(root), size=64)
    _assert_matches(data, *truth["test"], 64)
    from_128 = torch.nn.functional.interpolate(load_split("flowers102", "test", root=str(root)).images.float(),
                                               size=64, mode="bilinear", antialias=True)
    assert not torch.equal(data.images.float(), from_128.round())


def _identify(data, truth: dict[Path, int], size: int) -> list[Path]:
    """Which fake file each loaded image is (the random images are all different)."""
    by_pixels = {(_reference(p, size) * 255).round().to(torch.uint8).numpy().tobytes(): p for p in truth}
    return [by_pixels[image.numpy().tobytes()] for image in data.images]


def _check_split(name: str, root: Path, truth: dict[Path, int], per_class_test: dict[int, int], tmp_path, monkeypatch):
    """Load both splits and check they partition the files, stratified and reproducibly; returns them."""
    train, test = (load_split(name, s, root=str(root)) for s in ("train", "test"))
    train_files, test_files = _identify(train, truth, 128), _identify(test, truth, 128)
    assert not set(train_files) & set(test_files)
    assert sorted(train_files + test_files) == sorted(truth)
    assert train.labels.tolist() == [truth[p] for p in train_files]
    assert test.labels.tolist() == [truth[p] for p in test_files]
    assert Counter(test.labels.tolist()) == per_class_test
    # deterministic: a fresh cache decodes and splits the same way
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path / "home2"))
    again = load_split(name, "test", root=str(root))
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    return train, test, train_files, test_files


def test_eurosat_gets_the_90_10_split_the_authors_intended(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    truth = _fake_eurosat(root, np.random.RandomState(4))
    train, test, _, test_files = _check_split("eurosat", root, truth, {c: 1 for c in range(10)}, tmp_path, monkeypatch)
    assert (len(train), len(test)) == (90, 10)
    assert train.classes == test.classes == [vision.EUROSAT_NAMES[c] for c in EUROSAT]
    assert "sea or lake" in train.classes
    # the fork's call: train_test_split(test_size=0.1, stratify=labels, random_state=1) in ImageFolder order
    folder_order = [p for cls in EUROSAT for p in sorted((root / "eurosat/2750" / cls).iterdir())]
    _, expected_test = train_test_split(folder_order, test_size=0.1, stratify=[truth[p] for p in folder_order],
                                        random_state=1)
    assert test_files == expected_test


def test_caltech101_split_drops_background_and_makes_grey_images_rgb(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    truth = _fake_caltech(root, np.random.RandomState(6))
    # 20 % of 10, 5, 5 and 10 images per class
    train, test, train_files, _ = _check_split("caltech101", root, truth, {0: 2, 1: 1, 2: 1, 3: 2}, tmp_path,
                                               monkeypatch)
    assert train.classes == test.classes == ["face", "leopard", "accordion", "yin yang"]
    assert (len(train), len(test)) == (24, 6)
    grey = [i for i, p in enumerate(train_files) if Image.open(p).mode == "L"]
    assert grey
    for i in grey:
        channels = train.images[i]
        assert torch.equal(channels[0], channels[1]) and torch.equal(channels[0], channels[2])


def test_default_root_is_the_datasets_dir(tmp_path):
    truth = _fake_dtd(paths.datasets_dir() / "dtd", np.random.RandomState(7))
    _assert_matches(load_split("dtd", "test"), *truth["test"], 128)


def test_second_load_reads_the_cache_not_the_raw_files(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    _fake_pets(root, np.random.RandomState(8))
    first = load_split("oxford_pets", "train", root=str(root))
    cached = list(paths.tensors_dir().glob("oxford_pets_train_128px_*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    shutil.rmtree(root)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(vision, "_decode", no_decode)
    second = load_split("oxford_pets", "train", root=str(root))
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.classes == second.classes
    assert cached[0].stat().st_mtime_ns == stamp  # read, not rewritten
    with pytest.raises(AssertionError, match="decoded again"):  # a new size is a new key: decoded anew
        load_split("oxford_pets", "train", root=str(root), size=64)


def test_missing_dataset_offline_names_root_files_and_fix_without_downloading(tmp_path, monkeypatch):
    attempts = []
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", lambda self: attempts.append(self))
    root = tmp_path / "empty"
    with pytest.raises(MissingFileError) as err:
        load_split("cifar10", "train", root=str(root))
    msg = str(err.value)
    assert str(root) in msg and "cifar-10-batches-py" in msg and "data_batch_1" in msg
    assert "cifar-10-python.tar.gz" in msg and "download=True" in msg and "VPCOST_OFFLINE" in msg
    with pytest.raises(MissingFileError, match="101_ObjectCategories"):
        load_split("caltech101", "test", root=str(root))
    assert not attempts
    assert not root.exists()  # nothing was created while looking
    assert not paths.tensors_dir().exists()  # and no cache was written for a failed load


def test_a_failed_download_is_a_missing_file_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "0")
    calls = []

    def offline_url(url, *args, **kwargs):
        calls.append((url, socket.getdefaulttimeout()))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.svhn, "download_url", offline_url)
    before = socket.getdefaulttimeout()
    with pytest.raises(MissingFileError) as err:
        load_split("svhn", "test", root=str(tmp_path / "svhn"))
    assert calls and calls[0][0].endswith("test_32x32.mat")
    assert calls[0][1] == vision.DOWNLOAD_TIMEOUT_S  # a blackholed network times out instead of hanging
    assert socket.getdefaulttimeout() == before
    assert "download failed" in str(err.value) and "URLError" in str(err.value)
    assert isinstance(err.value.__cause__, urllib.error.URLError)


def test_files_that_fail_torchvision_checks_are_reported_not_downloaded_over(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "0")
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: False)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download",
                        lambda self: pytest.fail("tried to download over the user's files"))
    root = tmp_path / "raw"
    _fake_cifar(root, np.random.RandomState(9))
    with pytest.raises(MissingFileError, match="torchvision rejected the files"):
        load_split("cifar10", "test", root=str(root))
