"""Which class names fill CLIP's text prompts: ours (descriptive) or the ones of the authors' fork.

- ``"descriptive"`` (default): the dataset's names as ``data.vision`` gives them, e.g. GTSRB's sign
  names ("speed limit 20 km/h"), EuroSAT "annual crop land", Caltech101 and Flowers102 categories.
- ``"fork"``: what the authors' ``prepare_additive_data`` passed to CLIP: GTSRB's ``GTSRB_LABEL_MAP``
  short labels ("20 speed"), EuroSAT's folder names lower-cased ("annualcrop", "sealake"), and the
  digits "0".."K-1" for Caltech101 and Flowers102 (``data.vision.FORK_CLASS_NAMES``). Datasets the
  fork names like us (CIFAR-10, SVHN, DTD, OxfordPets) and every generated dataset keep ours.

The source is part of the run (``RunSpec.class_names``, read with a default while the field is new)
and every CLIP record stores it beside the names used.
"""

from __future__ import annotations

from ..errors import SpecError, check_choice

CLASS_NAME_SOURCES = ("descriptive", "fork")
DEFAULT_CLASS_NAMES = "descriptive"


def class_name_source(spec) -> str:
    """The spec's class-name source; ``None`` (and specs written before the field existed) mean descriptive."""
    value = getattr(spec, "class_names", None)
    if value is None:
        return DEFAULT_CLASS_NAMES
    check_choice("class_names", value, CLASS_NAME_SOURCES)
    return value


def class_names_for(dataset: str, classes: list[str], source: str) -> list[str]:
    """The K names to put into the prompts of ``dataset`` whose loader named its classes ``classes``."""
    from ..data.vision import FORK_CLASS_NAMES

    check_choice("class_names", source, CLASS_NAME_SOURCES)
    if source == "descriptive" or dataset not in FORK_CLASS_NAMES:
        return list(classes)
    names = FORK_CLASS_NAMES[dataset]
    if len(names) != len(classes):
        raise SpecError(f"{dataset}: the fork's class names list {len(names)} classes, the data has {len(classes)}")
    return list(names)
