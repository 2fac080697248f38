"""Any image folder as a target dataset: ``load_split("folder:/data/leaves", "train")``.

Name: ``folder:<PATH>[?test_fraction=F&split_seed=S&size=PX]``. Two layouts are read:

* ``PATH/train/<class>/*`` and ``PATH/test/<class>/*``: the folder's own split. Both must hold the
  same classes; other top-level folders (``val/``) are ignored.
* ``PATH/<class>/*``: one tree, split here by a seeded stratified split, scikit-learn's
  ``train_test_split(test_size=F, stratify=labels, random_state=S)`` over the files sorted by path
  (``data.splits.stratified_split``, the call used for EuroSAT), F = 0.2 and S = 0 unless stated.

Classes are the sorted subfolder names (torchvision ``ImageFolder``'s order), label i naming the
i-th. Images are the files with an image extension anywhere below a class folder, hidden ones
skipped. They are decoded as the paper's 128-px datasets are (RGB, ``Resize((s, s))`` bilinear
antialiased, uint8; ``size`` defaults to 128) once, into the tensor cache of ``data/cache.py``,
keyed by the folder's absolute path and a fingerprint of every image's path, size and
modification time plus the split options, so an edited folder is decoded again.

The split and the fingerprint are stated in ``get_dataset_info(name).notes`` and, as a dict,
by ``scan_folder(name).provenance()``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DatasetFileError, DatasetLayoutError, SpecError
from ..names import split_options
from .base import DatasetInfo, ImageSplit, register_resolver
from .cache import cached_split, decode_images
from .splits import stratified_split
from .vision import _ToUint8

__all__ = ["PREFIX", "FolderSource", "check_shots", "folder_info", "is_folder", "load_folder", "scan_folder"]

PREFIX = "folder:"
DECODE_VERSION = "1"  # bump when decoding changes: every folder's cache is then rebuilt
DEFAULT_TEST_FRACTION = 0.2  # share of each class that goes to test in the one-tree layout
DEFAULT_SPLIT_SEED = 0  # random_state of that split
DEFAULT_SIZE = 128  # the prompt's input size in pixels, as the paper's 128-px datasets
OPTIONS = {  # the query keys of a folder: name, with their meaning
    "test_fraction": "share of each class held out as test, in (0, 1) (one-tree layout only; default 0.2)",
    "split_seed": "random_state of the stratified split (one-tree layout only; default 0)",
    "size": "input size in pixels the images are resized to (default 128)",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SPLITS = ("train", "test")


def is_folder(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass(frozen=True)
class FolderSource:
    """A scanned image folder: its classes, the files of each split with their labels, and how it was split."""

    name: str  # the folder: name as given
    root: Path  # absolute
    layout: str  # "train/test" (the folder's own split) or "one tree" (split here)
    classes: tuple[str, ...]
    files: dict[str, tuple[tuple[Path, int], ...]]  # split -> ((file, label), ...)
    size: int
    test_fraction: float | None  # None for the train/test layout
    split_seed: int | None
    fingerprint: str  # sha256 over every image's relative path, size, mtime and the split options

    def counts(self, split: str) -> dict[str, int]:
        """Images per class name in ``split``."""
        labels = np.bincount([label for _, label in self.files[split]], minlength=len(self.classes))
        return dict(zip(self.classes, labels.tolist(), strict=True))

    def split_text(self) -> str:
        if self.layout == "train/test":
            return "the folder's own train/ and test/ subfolders"
        return (f"one tree split here: scikit-learn train_test_split(test_size={self.test_fraction}, stratify=labels, "
                f"random_state={self.split_seed}) over the image files sorted by path")

    def provenance(self) -> dict[str, Any]:
        """What a report should record about this dataset."""
        return {"name": self.name, "root": str(self.root), "layout": self.layout, "split": self.split_text(),
                "test_fraction": self.test_fraction, "split_seed": self.split_seed, "size": self.size,
                "classes": list(self.classes), "n_train": len(self.files["train"]), "n_test": len(self.files["test"]),
                "fingerprint": self.fingerprint}


# ------------------------------------------------------------------------------------------------ names


def _parse(name: str) -> tuple[Path, dict[str, str]]:
    body, options = split_options(name, OPTIONS)
    path = body.removeprefix(PREFIX)
    if not path:
        raise SpecError(f"{name!r} names no folder: write folder:<path>")
    return Path(path).expanduser().absolute(), options


def _options(name: str, options: dict[str, str]) -> tuple[float, int, int]:
    try:
        fraction = float(options.get("test_fraction", DEFAULT_TEST_FRACTION))
        seed = int(options.get("split_seed", DEFAULT_SPLIT_SEED))
        size = int(options.get("size", DEFAULT_SIZE))
    except ValueError as err:
        raise SpecError(f"{name!r}: {err}; test_fraction is a number in (0, 1), split_seed and size integers") from err
    if not 0.0 < fraction < 1.0 or size < 1:
        raise SpecError(f"{name!r}: test_fraction must be in (0, 1) and size >= 1, got {fraction} and {size}")
    return fraction, seed, size


# ------------------------------------------------------------------------------------------------- scan


def _images_below(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, hidden files and folders skipped, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _class_folders(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _scan_tree(name: str, folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) for every image below ``folder/<class>``; an empty class is an error."""
    files = []
    for label, cls in enumerate(classes):
        images = _images_below(folder / cls)
        if not images:
            raise DatasetLayoutError(f"{name}: class {cls!r} has no images in {folder / cls} (looked for "
                                     f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the empty folder")
        files += [(path, label) for path in images]
    return files


def _two_trees(name: str, root: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    per_split = {split: _class_folders(root / split) for split in SPLITS}
    classes = sorted(set(per_split["train"]) | set(per_split["test"]))
    for split, other in (("train", "test"), ("test", "train")):
        missing = sorted(set(classes) - set(per_split[split]))
        if missing:
            more = f" (and {len(missing) - 1} more: {missing[1:6]})" if len(missing) > 1 else ""
            raise DatasetLayoutError(f"{name}: class {missing[0]!r}{more} is in {other}/ but missing from {split}/; "
                                     "every class needs images in both: add "
                                     f"{root / split / missing[0]}/ with images, or remove the class from {other}/")
    if not classes:
        raise DatasetLayoutError(f"{name}: {root}/train and {root}/test hold no class folders; put images in "
                                 "train/<class>/ and test/<class>/")
    return classes, {split: _scan_tree(name, root / split, classes) for split in SPLITS}


def _one_tree(name: str, root: Path, fraction: float, seed: int) -> tuple[list[str], dict[str, list]]:
    classes = _class_folders(root)
    if len(classes) < 2:
        raise DatasetLayoutError(f"{name}: {root} has {len(classes)} class folder(s); a classification target needs "
                                 "at least 2: put images in <folder>/<class>/ (or train/<class>/ and test/<class>/)")
    files = _scan_tree(name, root, classes)
    labels = np.array([label for _, label in files])
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        cls = classes[int(counts.argmin())]
        raise DatasetLayoutError(f"{name}: class {cls!r} has {counts.min()} image; a stratified split needs at least "
                                 f"2 per class: add images, or give the folder train/ and test/ subfolders")
    try:
        train, test = stratified_split(labels, fraction, seed)
    except ValueError as err:  # scikit-learn: fewer test (or train) images than classes
        raise DatasetLayoutError(f"{name}: cannot split {len(files)} images of {len(classes)} classes with "
                                 f"test_fraction={fraction} ({err}); raise test_fraction or add images") from err
    split = {"train": [files[i] for i in np.sort(train)], "test": [files[i] for i in np.sort(test)]}
    for part, chosen in split.items():
        absent = sorted(set(range(len(classes))) - {label for _, label in chosen})
        if absent:
            raise DatasetLayoutError(f"{name}: with test_fraction={fraction} class {classes[absent[0]]!r} gets no "
                                     f"{part} images; change test_fraction, or add images to that class")
    return classes, split


def _fingerprint(root: Path, files: dict[str, list[tuple[Path, int]]], extra: str) -> str:
    h = hashlib.sha256(f"{DECODE_VERSION}|{extra}\n".encode())
    for split in SPLITS:
        for path, label in files[split]:
            st = path.stat()
            h.update(f"{split}\t{label}\t{path.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def scan_folder(name: str) -> FolderSource:
    """Read the layout of a ``folder:`` name (no image is decoded); layout problems raise ``DatasetLayoutError``."""
    root, options = _parse(name)
    fraction, seed, size = _options(name, options)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name}: {root} is not a folder (a relative path is read from the working "
                                 f"directory, {Path.cwd()}); give the path of an image folder")
    has = {split: (root / split).is_dir() for split in SPLITS}
    if all(has.values()):
        stated = sorted(set(options) & {"test_fraction", "split_seed"})
        if stated:
            raise DatasetLayoutError(f"{name}: {root} has its own train/ and test/ folders, so {stated} would be "
                                     "ignored; drop them from the name, or move the class folders to the top")
        layout, fraction_, seed_ = "train/test", None, None
        classes, files = _two_trees(name, root)
    elif any(has.values()):
        have, lack = ("train", "test") if has["train"] else ("test", "train")
        raise DatasetLayoutError(f"{name}: {root} has {have}/ but no {lack}/; add {lack}/<class>/ folders, or put the "
                                 "class folders at the top to have them split here")
    else:
        layout, fraction_, seed_ = "one tree", fraction, seed
        classes, files = _one_tree(name, root, fraction, seed)
    extra = f"{layout}|{fraction_}|{seed_}|{'/'.join(classes)}"
    return FolderSource(name, root, layout, tuple(classes), {s: tuple(f) for s, f in files.items()}, size,
                        fraction_, seed_, _fingerprint(root, files, extra))


# ------------------------------------------------------------------------------------------- load, check


def folder_info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of a ``folder:`` name (``data.get_dataset_info`` dispatches here)."""
    src = scan_folder(name)
    counts = f"{len(src.files['train'])} / {len(src.files['test'])} images"
    notes = (f"image folder {src.root}: {len(src.classes)} classes, train / test {counts}; split: {src.split_text()}; "
             f"fingerprint {src.fingerprint[:16]}")
    return DatasetInfo(name=name, loader=partial(load_folder, source=src), input_size=src.size,
                       num_classes=len(src.classes), offline=True, notes=notes)


class _FolderImages(Dataset):
    """The files of one split as uint8 ``[3, size, size]``; an unreadable file raises naming it."""

    def __init__(self, files: tuple[tuple[Path, int], ...], size: int):
        self.paths = [path for path, _ in files]
        self.to_uint8 = _ToUint8(size)  # the same conversion as the registry's datasets

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.paths[i]
        try:
            with Image.open(path) as image:
                return self.to_uint8(image)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DatasetFileError(f"{path} cannot be read as an image ({type(err).__name__}: {err}); replace or "
                                   "delete the file, or move it out of the folder, and load again") from err


def _decode(src: FolderSource, split: str, size: int, cache_name: str) -> ImageSplit:
    files = src.files[split]
    desc = f"decode {src.root.name}/{split} {size}px"
    images = decode_images(_FolderImages(files, size), len(files), size, desc=desc)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageSplit(cache_name, split, images, labels, list(src.classes))


def load_folder(info: DatasetInfo, split: str, root: str | os.PathLike | None, size: int, *,
                source: FolderSource) -> ImageSplit:
    """The registered-loader signature: the cached tensors when the folder is unchanged, else decode once."""
    if root is not None:
        raise SpecError(f"{info.name}: a folder dataset carries its path in its name; do not pass root={root!r}")
    # the cache file is named by a hash of the path (a path is no file name); the fingerprint is its version
    cache_name = "folder-" + hashlib.sha256(str(source.root).encode()).hexdigest()[:12]
    version = f"{DECODE_VERSION}-{source.fingerprint[:16]}"
    data = cached_split(cache_name, split, size, version, lambda: _decode(source, split, size, cache_name))
    return ImageSplit(info.name, split, data.images, data.labels, list(data.classes))


def check_shots(name: str, n_shots: int | None) -> None:
    """Raise ``DatasetLayoutError`` when a class of dataset ``name`` has fewer than ``n_shots`` training images.

    The paper's protocol takes all images of a class smaller than N (``train._check_shots`` only
    refuses an N above the largest class); for a user's data that silently unbalances the N-shot
    set, so the report checks first. Works for every dataset name; a folder is only scanned.
    """
    if n_shots is None:
        return
    if is_folder(name):
        counts = scan_folder(name).counts("train")
    else:
        from .base import load_split

        train = load_split(name, "train")
        per_class = torch.bincount(train.labels, minlength=train.num_classes).tolist()
        counts = dict(zip(train.classes, per_class, strict=True))
    short = {cls: n for cls, n in counts.items() if n < n_shots}
    if short:
        shown = ", ".join(f"{cls!r} ({n})" for cls, n in sorted(short.items(), key=lambda kv: kv[1])[:5])
        raise DatasetLayoutError(f"{name}: n_shots={n_shots} but {len(short)} class(es) have fewer training images: "
                                 f"{shown}; add images to them, lower N to {min(short.values())}, or use full data "
                                 "(n_shots=None)")


register_resolver("folder:", folder_info)
