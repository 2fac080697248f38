"""Target datasets by name, as uint8 tensors: ``load_split("cifar10", "train")``.

Importing this package registers the generated offline tasks and the paper's torchvision datasets;
``folder:<path>`` names any image folder (``data.folder``).
"""

from . import (
           mnist,  # noqa: F401  (registers mnist, fashion_mnist)
           synthetic,  # noqa: F401  (registers synth_shapes, synth_patterns, digits)
           vision,  # noqa: F401  (registers cifar10, svhn, gtsrb, dtd, flowers102, oxford_pets, eurosat, caltech101)
)
from .base import DatasetInfo, ImageSplit, get_dataset_info, list_datasets, load_split, register_dataset
from .folder import check_shots, scan_folder
from .shots import sample_n_shots

__all__ = ["DatasetInfo", "ImageSplit", "check_shots", "get_dataset_info", "list_datasets", "load_split",
           "register_dataset", "sample_n_shots", "scan_folder"]
