"""The one data contract every image dataset returns, and the name -> loader registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import UnknownNameError


@dataclass
class ImageSplit:
    """A decoded dataset split, held as tensors so batches are built on the device.

    ``images`` is uint8 ``[N, 3, H, W]`` at the prompt's input size (32 or 128 for the paper's
    datasets), ``labels`` int64 ``[N]`` in ``0..K-1``, ``classes`` the K class names.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"{self.name}/{self.split}: images must be uint8 [N,3,H,W], got "
                             f"{self.images.dtype} {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{self.name}/{self.split}: {len(self.images)} images but {len(self.labels)} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSplit:
        return ImageSplit(self.name, self.split, self.images[index], self.labels[index], self.classes)


@dataclass(frozen=True)
class DatasetInfo:
    """How to get one dataset: its loader and the facts the paper fixes for it."""

    name: str
    loader: Callable[..., ImageSplit]  # loader(info, split, root, size) -> ImageSplit
    input_size: int  # the prompt's input size: 32 (CIFAR-10, SVHN, GTSRB) or 128 (the rest)
    splits: tuple[str, str] = ("train", "test")  # (train split, test split) as we name them
    num_classes: int | None = None
    offline: bool = False  # generated here; needs no download
    notes: str = ""
    fake: str | None = None  # "module:function" writing fake files in the published layout (the rehearsal)


_DATASETS: dict[str, DatasetInfo] = {}
# name prefix -> resolver: names made up on the fly (``folder:<path>``), registered by the module that reads them
# (``data.folder``), so this module imports none of them.
_RESOLVERS: dict[str, Callable[[str], DatasetInfo]] = {}


def register_resolver(prefix: str, resolve: Callable[[str], DatasetInfo]) -> None:
    """Names starting with ``prefix`` are resolved by ``resolve(name)`` instead of the table."""
    _RESOLVERS[prefix] = resolve


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in _DATASETS:
        raise ValueError(f"dataset {info.name!r} is registered twice")
    _DATASETS[info.name] = info
    return info


def get_dataset_info(name: str) -> DatasetInfo:
    """The dataset called ``name``; ``folder:<path>`` names are scanned from disk (``data.folder``)."""
    if name in _DATASETS:
        return _DATASETS[name]
    for prefix, resolve in _RESOLVERS.items():
        if name.startswith(prefix):
            return resolve(name)
    raise UnknownNameError("dataset", name, [*_DATASETS, *(f"{p}<path>" for p in _RESOLVERS)])


def list_datasets(offline: bool | None = None) -> list[str]:
    return sorted(n for n, i in _DATASETS.items() if offline is None or i.offline == offline)


def load_split(name: str, split: str, *, root: str | None = None, size: int | None = None) -> ImageSplit:
    """Load split ``"train"`` or ``"test"`` of dataset ``name`` as an ``ImageSplit``.

    ``size`` overrides the paper's input size (CLIP prompts want the model's resolution).
    """
    info = get_dataset_info(name)
    if split not in ("train", "test"):
        raise UnknownNameError("split", split, ["train", "test"])
    return info.loader(info, split, root, size or info.input_size)
