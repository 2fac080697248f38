"""Fake image datasets in the folder and file layouts torchvision reads (``vision.py``'s loaders).

A handful of random images per split and class, with the real class names and split files, so the
rehearsal and the loader tests run the real torchvision readers. ``write_fake`` is what the registry's
``DatasetInfo.fake`` names; everything is seeded.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths

DTD_CLASSES = (
    "banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted fibrous flecked "
    "freckled frilly gauzy grid grooved honeycombed interlaced knitted lacelike lined marbled matted meshed paisley "
    "perforated pitted pleated polka-dotted porous potholed scaly smeared spiralled sprinkled stained stratified "
    "striped studded swirly veined waffled woven wrinkled zigzagged").split()
PET_BREEDS = (
    "Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer "
    "British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired "
    "great_pyrenees havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland Persian "
    "pomeranian pug Ragdoll Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese Sphynx "
    "staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").split()
EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Caltech101 folders whose names the loader rewrites, plus numbered stand-ins for the other 96 categories.
CALTECH_FOLDERS = ("Faces", "Faces_easy", "Leopards", "Motorbikes", "airplanes",
                   *(f"category_{i:02d}" for i in range(96)))


def _noise(rng: np.random.RandomState, h: int, w: int, mode: str = "RGB") -> Any:
    from PIL import Image

    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode)


def _save(image: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def fake_cifar10(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """Pickled batches ``data_batch_1..5`` (training images spread over them), ``test_batch``, ``batches.meta``."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    train_labels = [c for c in range(10) for _ in range(train)]
    parts = np.array_split(np.array(train_labels), 5)
    for i, labels in enumerate(parts, 1):
        data = rng.randint(0, 256, (len(labels), 3072), dtype=np.uint8)
        (base / f"data_batch_{i}").write_bytes(pickle.dumps({"data": data, "labels": labels.tolist()}))
    labels = [c for c in range(10) for _ in range(test)]
    data = rng.randint(0, 256, (len(labels), 3072), dtype=np.uint8)
    (base / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR_CLASSES)}))


def fake_svhn(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``{train,test}_32x32.mat`` with ``X`` [32, 32, 3, N] and ``y`` [N, 1], digit 0 written as 10."""
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        y = np.array([d or 10 for d in range(10) for _ in range(n)], dtype=np.uint8)[:, None]
        x = rng.randint(0, 256, (32, 32, 3, len(y)), dtype=np.uint8)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})


def fake_gtsrb(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """43 class folders of ``.ppm`` training images; test images with ``GT-final_test.csv``."""
    base = root / "gtsrb"
    for cid in range(43):
        for k in range(train):
            _save(_noise(rng, 30, 34), base / "GTSRB/Training" / f"{cid:05d}" / f"{k:05d}_00000.ppm")
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i, cid in enumerate(c for c in range(43) for _ in range(test)):
        _save(_noise(rng, 33, 30), base / "GTSRB/Final_Test/Images" / f"{i:05d}.ppm")
        rows.append(f"{i:05d}.ppm;30;33;2;2;28;31;{cid}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def fake_dtd(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``dtd/dtd/images/<class>/*.jpg`` and partition-1 label files ``{train,val,test}1.txt``."""
    base = root / "dtd/dtd"
    for split, count in (("train", train), ("val", 1), ("test", test)):
        lines = []
        for cls in DTD_CLASSES:
            for _ in range(count):
                name = f"{cls}_{len(list((base / 'images' / cls).glob('*.jpg'))) + 1:04d}.jpg"
                _save(_noise(rng, 24, 20), base / "images" / cls / name)
                lines.append(f"{cls}/{name}")
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / f"labels/{split}1.txt").write_text("\n".join(lines) + "\n")


def fake_flowers102(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``flowers-102/jpg/image_*.jpg``, ``imagelabels.mat`` (1-based) and ``setid.mat`` (trnid / valid / tstid)."""
    import scipy.io

    base = root / "flowers-102"
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    for key, count in (("trnid", train), ("valid", 1), ("tstid", test)):
        for cls in range(1, 103):
            for _ in range(count):
                labels.append(cls)
                ids[key].append(len(labels))
                _save(_noise(rng, 22, 26), base / "jpg" / f"image_{len(labels):05d}.jpg")
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})


def fake_oxford_pets(root: Path, rng: np.random.RandomState, train: int = 2, test: int = 1) -> None:
    """``oxford-iiit-pet/images/<Breed>_<n>.jpg`` and ``annotations/{trainval,test}.txt``."""
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    n = 0
    for split, count in (("trainval", train), ("test", test)):
        lines = []
        for cid, breed in enumerate(PET_BREEDS, 1):
            species = 1 if breed[0].isupper() else 2  # the dataset's convention: cats capitalised
            for _ in range(count):
                n += 1
                _save(_noise(rng, 26, 22), base / "images" / f"{breed}_{n}.jpg")
                lines.append(f"{breed}_{n} {cid} {species} {n}")
        (base / f"annotations/{split}.txt").write_text("\n".join(lines) + "\n")


def fake_eurosat(root: Path, rng: np.random.RandomState, per_class: int = 10) -> None:
    """``eurosat/2750/<Class>/<Class>_<i>.jpg`` (the loader makes the 90/10 split: 10 per class give 1 test image)."""
    for cls in EUROSAT_CLASSES:
        for i in range(1, per_class + 1):
            _save(_noise(rng, 16, 16), root / "eurosat/2750" / cls / f"{cls}_{i}.jpg")


def fake_caltech101(root: Path, rng: np.random.RandomState, per_class: int = 5) -> None:
    """``caltech101/101_ObjectCategories/<category>/image_*.jpg`` with ``BACKGROUND_Google`` and some grey images."""
    base = root / "caltech101/101_ObjectCategories"
    for i in range(1, 3):
        _save(_noise(rng, 20, 20), base / "BACKGROUND_Google" / f"image_{i:04d}.jpg")
    for cls in CALTECH_FOLDERS:
        for i in range(1, per_class + 1):
            mode = "L" if i % 3 == 0 else "RGB"
            _save(_noise(rng, 18, 22, mode=mode), base / cls / f"image_{i:04d}.jpg")


WRITERS: dict[str, Callable[..., None]] = {
    "cifar10": fake_cifar10, "svhn": fake_svhn, "gtsrb": fake_gtsrb, "dtd": fake_dtd, "flowers102": fake_flowers102,
    "oxford_pets": fake_oxford_pets, "eurosat": fake_eurosat, "caltech101": fake_caltech101,
}


def write_fake(name: str, seed: int = 0) -> list[str]:
    """Write image set ``name`` where its loader looks (``paths.datasets_dir()``); returns the layouts written."""
    WRITERS[name](paths.datasets_dir() / name, np.random.RandomState(seed))
    return [f"torchvision {name}"]
