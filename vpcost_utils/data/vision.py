"""The paper's eight target image datasets, read with ``torchvision.datasets`` and cached as uint8 tensors.

Splits and input sizes follow the authors' fork (reference-algorithms.md §1e):

============  ====================================  =======================  =====  =======
name          torchvision source                    train / test             size   classes
============  ====================================  =======================  =====  =======
cifar10       ``CIFAR10(train=True/False)``          50,000 / 10,000          32     10
svhn          ``SVHN("train"/"test")``, no extra     73,257 / 26,032          32     10
gtsrb         ``GTSRB("train"/"test")``              26,640 / 12,630          32*    43
dtd           ``DTD("train"/"test", partition=1)``   1,880 / 1,880 (no val)   128    47
flowers102    ``Flowers102("train"/"test")``         1,020 / 6,149 (no val)   128    102
oxford_pets   ``OxfordIIITPet("trainval"/"test")``   3,680 / 3,669            128    37
eurosat       ``EuroSAT()`` + stratified 90/10       24,300 / 2,700           128    10
caltech101    ``Caltech101("category")`` + 80/20     6,941 / 1,736            128    101
============  ====================================  =======================  =====  =======

Sizes: CIFAR-10 and SVHN keep their native 32 px; GTSRB (*) and every 128-px dataset are converted
to RGB and resized with ``transforms.Resize((s, s))`` on the PIL image (bilinear, antialiased), so
``images / 255`` equals the reference's ``ToTensor()`` output exactly. ``size`` (CLIP wants 224
or 336) replaces the paper's size and always resizes from the original image.

EuroSAT: torchvision ships it without a split. The fork meant to use a stratified 90/10 split
(``train_test_split(test_size=0.1, stratify=..., random_state=1)``) but assigned the result to
``.data``/``.targets`` of an ``ImageFolder``, which reads ``.samples``; the split had no effect,
so the authors trained and tested on the same 27,000 images (train/test leakage). We use the
split they intended, so our EuroSAT numbers are not comparable with the paper's.

Caltech101: torchvision's category targets over the 101 object classes (the ``BACKGROUND_Google``
clutter folder is removed, as torchvision does). The authors read an npz whose source and split
were never released, so we use our own seeded stratified split: 20 % test, ``random_state=1``
(80/20 rather than EuroSAT's 90/10 so that the smallest classes, 31 images, keep about six test
images each). Grey-scale images are converted to RGB.

Raw files are looked for under ``root`` (default ``paths.datasets_dir() / name``) in torchvision's
layout. When absent, torchvision's download is tried unless ``VPCOST_OFFLINE=1``; when that fails
too, a ``MissingFileError`` names the root, the files expected there and where to get them.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.transforms.functional import pil_to_tensor

from .. import paths
from .. import rehearsal_mode as rehearsal
from ..errors import MissingFileError, VpcostError
from .base import DatasetInfo, ImageSplit, register_dataset
from .cache import cached_split, decode_images
from .splits import stratified_split

# Bump when decoding changes (resize, RGB conversion, class names): old cache files are then ignored.
DECODE_VERSION = "1"
EUROSAT_TEST_FRACTION, EUROSAT_SEED = 0.1, 1
CALTECH_TEST_FRACTION, CALTECH_SEED = 0.2, 1
DOWNLOAD_TIMEOUT_S = 60  # per socket operation, so that a blackholed network fails instead of hanging

SVHN_CLASSES = [str(d) for d in range(10)]  # torchvision maps the .mat label 10 to digit 0

# GTSRB class ids 0..42 (torchvision has no names; these are the benchmark's sign names).
GTSRB_CLASSES = [
    "speed limit 20 km/h", "speed limit 30 km/h", "speed limit 50 km/h", "speed limit 60 km/h",
    "speed limit 70 km/h", "speed limit 80 km/h", "end of speed limit 80 km/h", "speed limit 100 km/h",
    "speed limit 120 km/h", "no passing", "no passing for vehicles over 3.5 tons",
    "right-of-way at the next intersection", "priority road", "yield", "stop", "no vehicles",
    "vehicles over 3.5 tons prohibited", "no entry", "general caution", "dangerous curve to the left",
    "dangerous curve to the right", "double curve", "bumpy road", "slippery road", "road narrows on the right",
    "road work", "traffic signals", "pedestrians", "children crossing", "bicycles crossing",
    "beware of ice or snow", "wild animals crossing", "end of all speed and passing limits", "turn right ahead",
    "turn left ahead", "ahead only", "go straight or right", "go straight or left", "keep right", "keep left",
    "roundabout mandatory", "end of no passing", "end of no passing for vehicles over 3.5 tons",
]

# EuroSAT's folder names are CamelCase; CLIP text prompts want words.
EUROSAT_NAMES = {
    "AnnualCrop": "annual crop land", "Forest": "forest", "HerbaceousVegetation": "herbaceous vegetation land",
    "Highway": "highway or road", "Industrial": "industrial buildings", "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land", "Residential": "residential buildings", "River": "river",
    "SeaLake": "sea or lake",
}

# Caltech101 folders that are plural or capitalised; every other folder only has '_' turned into ' '.
CALTECH_NAMES = {"Faces": "face", "Faces_easy": "face easy", "Leopards": "leopard", "Motorbikes": "motorbike",
                 "airplanes": "airplane"}

# The class names the authors' fork puts into CLIP's text prompts, where they differ from ours
# (landskape-ai/Reprogram_LT data/prepare_data.py::prepare_additive_data, data/const.py): GTSRB's
# short labels of GTSRB_LABEL_MAP, EuroSAT's folder names lower-cased (no word split), and plain
# indices for Caltech101 and Flowers102. CIFAR-10, SVHN (digits), DTD and OxfordPets use the same
# names as ours. All are before the fork's refine_classnames (lower case, "_" and "-" to spaces),
# which CLIP's head applies to either source.
FORK_GTSRB_CLASSES = [
    "20_speed", "30_speed", "50_speed", "60_speed", "70_speed", "80_speed", "80_lifted", "100_speed", "120_speed",
    "no_overtaking_general", "no_overtaking_trucks", "right_of_way_crossing", "right_of_way_general", "give_way",
    "stop", "no_way_general", "no_way_trucks", "no_way_one_way", "attention_general", "attention_left_turn",
    "attention_right_turn", "attention_curvy", "attention_bumpers", "attention_slippery", "attention_bottleneck",
    "attention_construction", "attention_traffic_light", "attention_pedestrian", "attention_children",
    "attention_bikes", "attention_snowflake", "attention_deer", "lifted_general", "turn_right", "turn_left",
    "turn_straight", "turn_straight_right", "turn_straight_left", "turn_right_down", "turn_left_down", "turn_circle",
    "lifted_no_overtaking_general", "lifted_no_overtaking_trucks",
]
FORK_CLASS_NAMES: dict[str, list[str]] = {
    "gtsrb": FORK_GTSRB_CLASSES,
    "eurosat": ["annualcrop", "forest", "herbaceousvegetation", "highway", "industrial", "pasture", "permanentcrop",
                "residential", "river", "sealake"],
    "caltech101": [str(i) for i in range(101)],
    "flowers102": [str(i) for i in range(102)],
}


@dataclass(frozen=True)
class _Source:
    """How one dataset is read from torchvision and what the paper fixes for it."""

    tv_class: str  # torchvision.datasets class name
    tv_kwargs: Callable[[str], dict[str, Any]]  # our split -> constructor kwargs (besides root/transform/download)
    expected: Callable[[str], list[str]]  # our split -> paths under root that must exist
    url: str  # where the raw files come from, for the error message
    labels: Callable[[Any], list[int]]  # dataset -> label per sample (the attribute the reference reads)
    classes: Callable[[Any], list[str]]
    input_size: int
    num_classes: int
    notes: str
    native: int | None = None  # raw arrays already at this size (CIFAR, SVHN): no PIL round trip needed
    raw: Callable[[Any], torch.Tensor] | None = None  # dataset -> uint8 [N,3,H,W] of those arrays
    split_by: tuple[float, int] | None = None  # (test fraction, seed) when torchvision has no split

    def build(self, root: Path, split: str, transform: Callable | None, download: bool) -> Dataset:
        cls = getattr(datasets, self.tv_class)
        return cls(str(root), transform=transform, download=download, **self.tv_kwargs(split))

    def call_text(self, root: Path, split: str) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.tv_kwargs(split).items())
        return f"torchvision.datasets.{self.tv_class}({str(root)!r}{args}, download=True)"


_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
_GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_SPLIT_NOTE = ("torchvision has no split: seeded stratified split via scikit-learn train_test_split"
               "(test_size={frac}, stratify=labels, random_state={seed}).")

_SOURCES: dict[str, _Source] = {
    "cifar10": _Source(
        "CIFAR10", lambda s: {"train": s == "train"}, lambda s: [f"cifar-10-batches-py/{f}" for f in _CIFAR_FILES],
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract into the folder)",
        lambda d: list(d.targets), lambda d: list(d.classes), 32, 10,
        "torchvision CIFAR10 train/test (50,000 / 10,000), native 32 px.",
        native=32, raw=lambda d: torch.from_numpy(d.data).permute(0, 3, 1, 2)),
    "svhn": _Source(
        "SVHN", lambda s: {"split": s}, lambda s: [f"{s}_32x32.mat"],
        "http://ufldl.stanford.edu/housenumbers/{train,test}_32x32.mat",
        lambda d: d.labels.tolist(), lambda d: list(SVHN_CLASSES), 32, 10,
        "torchvision SVHN train/test (73,257 / 26,032), 'extra' unused, native 32 px; label 10 means digit 0.",
        native=32, raw=lambda d: torch.from_numpy(d.data)),
    "gtsrb": _Source(
        "GTSRB", lambda s: {"split": s},
        lambda s: (["gtsrb/GTSRB/Training"] if s == "train"
                   else ["gtsrb/GTSRB/Final_Test/Images", "gtsrb/GT-final_test.csv"]),
        f"{_GTSRB_URL}GTSRB-Training_fixed.zip, GTSRB_Final_Test_Images.zip and GTSRB_Final_Test_GT.zip "
        "(extract into <folder>/gtsrb)",
        lambda d: [t for _, t in d._samples], lambda d: list(GTSRB_CLASSES), 32, 43,
        "torchvision GTSRB train/test (26,640 / 12,630), Resize((32, 32)) as the reference."),
    "dtd": _Source(
        "DTD", lambda s: {"split": s, "partition": 1}, lambda s: ["dtd/dtd/images", f"dtd/dtd/labels/{s}1.txt"],
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz (extract into <folder>/dtd)",
        lambda d: list(d._labels), lambda d: list(d.classes), 128, 47,
        "torchvision DTD partition 1, train/test (1,880 / 1,880); val unused as in the authors' fork."),
    "flowers102": _Source(
        "Flowers102", lambda s: {"split": s},
        lambda s: ["flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"],
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ : 102flowers.tgz (extract), imagelabels.mat and "
        "setid.mat, all into <folder>/flowers-102",
        lambda d: list(d._labels), lambda d: list(datasets.Flowers102.classes), 128, 102,
        "torchvision Flowers102 train/test (1,020 / 6,149); val unused as in the authors' fork."),
    "oxford_pets": _Source(
        "OxfordIIITPet", lambda s: {"split": "trainval" if s == "train" else "test", "target_types": "category"},
        lambda s: ["oxford-iiit-pet/images",
                   f"oxford-iiit-pet/annotations/{'trainval' if s == 'train' else 'test'}.txt"],
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz and annotations.tar.gz "
        "(extract into <folder>/oxford-iiit-pet)",
        lambda d: list(d._labels), lambda d: list(d.classes), 128, 37,
        "torchvision OxfordIIITPet trainval/test (3,680 / 3,669), 37 breeds."),
    "eurosat": _Source(
        "EuroSAT", lambda s: {}, lambda s: ["eurosat/2750"],
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/"
        "EuroSAT.zip (extract into <folder>/eurosat)",
        lambda d: list(d.targets), lambda d: [EUROSAT_NAMES.get(c, c) for c in d.classes], 128, 10,
        "torchvision EuroSAT RGB (27,000 images). " + _SPLIT_NOTE.format(frac=EUROSAT_TEST_FRACTION,
                                                                          seed=EUROSAT_SEED)
        + " This is the split the authors' fork intended; in the fork it had no effect (assigned to "
        ".data/.targets of an ImageFolder), so the paper trained and tested on all 27,000 images.",
        split_by=(EUROSAT_TEST_FRACTION, EUROSAT_SEED)),
    "caltech101": _Source(
        "Caltech101", lambda s: {"target_type": "category"}, lambda s: ["caltech101/101_ObjectCategories"],
        "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip (unpack 101_ObjectCategories.tar.gz "
        "from it into <folder>/caltech101)",
        lambda d: list(d.y), lambda d: [CALTECH_NAMES.get(c, c.replace("_", " ")) for c in d.categories], 128, 101,
        "torchvision Caltech101 category targets, 101 classes (BACKGROUND_Google removed), grey images made RGB. "
        + _SPLIT_NOTE.format(frac=CALTECH_TEST_FRACTION, seed=CALTECH_SEED)
        + " Our own split: the authors' npz was never released.",
        split_by=(CALTECH_TEST_FRACTION, CALTECH_SEED)),
}


class _ToUint8:
    """PIL image -> RGB -> optional Resize((size, size)) -> uint8 [3, H, W], the reference's steps before /255."""

    def __init__(self, size: int | None):
        self.resize = None if size is None else transforms.Resize((size, size))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if self.resize is not None:
            image = self.resize(image)
        return pil_to_tensor(image)


class ImagesOnly(Dataset):
    """The images of ``base`` at ``index``, dropping its targets (labels are read once, from attributes)."""

    def __init__(self, base: Dataset, index: np.ndarray):
        self.base, self.index = base, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.base[int(self.index[i])][0]


def downloads_allowed() -> bool:
    """False when ``VPCOST_OFFLINE`` is set to anything but empty/0/false/no."""
    from ..fetch import offline  # the one reading of VPCOST_OFFLINE

    return not offline()


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision's urllib calls pass no timeout; the process-wide default is the only lever.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if old is None else min(old, seconds))
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _missing(name: str, split: str, root: Path, reason: str, files: list[str]) -> MissingFileError:
    src = _SOURCES[name]
    source = (f"{src.url.replace('<folder>', str(root))} (or run `{src.call_text(root, split)}` where the "
              "network works and copy that folder)")
    return MissingFileError(f"dataset {name!r} ({split} split; {reason})",
                            ", ".join(f"{root / f}" for f in files), source, str(root))


def _open(name: str, split: str, root: Path, transform: Callable | None) -> Dataset:
    """The torchvision dataset from ``root``, downloaded there if absent and allowed."""
    src = _SOURCES[name]
    expected = src.expected(split)
    missing = [f for f in expected if not (root / f).exists()]
    if not missing:
        try:
            with rehearsal.dataset_checksums_off():  # fake files in a rehearsal; a no-op otherwise
                return src.build(root, split, transform, download=False)
        except RuntimeError as err:  # torchvision's "not found or corrupted" (failed checksum)
            raise _missing(name, split, root, f"torchvision rejected the files: {err}", expected) from err
    if not downloads_allowed():
        raise _missing(name, split, root, "not on disk and VPCOST_OFFLINE forbids downloading", missing)
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            return src.build(root, split, transform, download=True)
    except Exception as err:  # every download failure (DNS, HTTP, timeout, bad archive) means: not here
        raise _missing(name, split, root, f"not on disk and the download failed: {type(err).__name__}: {err}",
                       missing) from err


@dataclass
class OpenedSplit:
    """One split of a fork dataset, opened: the torchvision dataset, the indices kept, their labels, class names."""

    source: _Source
    dataset: Dataset
    index: np.ndarray  # rows of ``dataset`` in this split (all of them unless the fork splits it, seeded)
    labels: torch.Tensor  # int64, one per kept row, checked against ``classes``
    classes: list[str]


def open_split(name: str, split: str, root: str | os.PathLike | None, transform: Callable | None) -> OpenedSplit:
    """Open split ``split`` of fork dataset ``name`` as the VP and the CLIP loaders both read it.

    The seeded stratified split of sets without a published test split, and the check that every label
    has a class name, live here once so the two image caches cannot disagree on which image is which.
    """
    src = _SOURCES[name]
    root_path = Path(root).expanduser() if root is not None else paths.datasets_dir() / name
    ds = _open(name, split, root_path, transform)
    labels = np.asarray(src.labels(ds), dtype=np.int64)
    classes = src.classes(ds)
    if src.split_by is None:
        index = np.arange(len(labels))
    else:
        index = stratified_split(labels, *src.split_by)[0 if split == "train" else 1]
    picked = torch.from_numpy(labels[index])
    if len(picked) and (int(picked.min()) < 0 or int(picked.max()) >= len(classes)):
        raise VpcostError(f"{name}/{split}: labels span {int(picked.min())}..{int(picked.max())} but there are "
                          f"{len(classes)} class names; the files under {root_path} look incomplete")
    return OpenedSplit(src, ds, index, picked, classes)


def _decode(name: str, split: str, root: str | os.PathLike | None, size: int) -> ImageSplit:
    """Read one split from the raw files into an ImageSplit (the slow path, run once per cache key)."""
    resize = None if size == _SOURCES[name].native else size
    opened = open_split(name, split, root, _ToUint8(resize))
    if resize is None and opened.source.raw is not None:
        images = opened.source.raw(opened.dataset)[torch.from_numpy(opened.index)].contiguous()
    else:
        images = decode_images(ImagesOnly(opened.dataset, opened.index), len(opened.index), size,
                               desc=f"decode {name}/{split} {size}px")
    return ImageSplit(name, split, images, opened.labels, opened.classes)


def cache_version(name: str) -> str:
    """The version part of a dataset's cache key (decode version plus its split recipe, if any)."""
    split_by = _SOURCES[name].split_by
    return DECODE_VERSION if split_by is None else f"{DECODE_VERSION}-test{split_by[0]}-seed{split_by[1]}"


def load_vision(info: DatasetInfo, split: str, root: str | os.PathLike | None, size: int) -> ImageSplit:
    """The registered loader: the cached tensors when present, else decode once and cache."""
    return cached_split(info.name, split, size, cache_version(info.name),
                        lambda: _decode(info.name, split, root, size))


for _name, _src in _SOURCES.items():
    register_dataset(DatasetInfo(name=_name, loader=load_vision, input_size=_src.input_size,
                                 num_classes=_src.num_classes, notes=_src.notes,
                                 fake="vpcost_utils.data.vision_fakes:write_fake"))
