"""The model registry: every entry's metadata, name lookup, ImageNet class names, the upstream check."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image
from torch import nn

from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.models import ModelEntry, SourceModel, _registry, create_model, get_entry, list_models
from vpcost_utils.models.imagenet import imagenet_classes
from vpcost_utils.models.upstream import upstream_top1

ALL = list_models()
RESNETS = list_models("resnet*")


@pytest.mark.parametrize("name", ALL)
def test_entry_schema(name):
    """torchvision's test_schema_meta_validation habit: every entry states what it is and where it comes from."""
    e = get_entry(name)
    arch, tag = name.split("/", 1)
    assert e.name == name and e.arch == arch and tag
    assert e.compression in {"dense", "unstructured", "structured", "quantization"}
    assert e.method and callable(e.loader)
    assert e.obtainable in {"yes", "maybe", "no"}
    assert e.source and e.license
    assert e.sparsity is None or 0.0 <= e.sparsity < 1.0
    assert e.bits is None or (isinstance(e.bits, int) and e.bits > 0)
    assert e.top1 is None or 0.0 < e.top1 <= 100.0
    if e.parent is not None:
        assert get_entry(e.parent).compression == "dense" and get_entry(e.parent).arch == e.arch
    if e.substitute is not None:
        assert callable(e.substitute) and e.substitute_note
    if e.obtainable == "no":
        assert e.substitute is not None, "a model nobody can download needs a labelled substitute"


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_entries_are_complete(name):
    e = get_entry(name)
    assert e.filename
    assert e.top1 is not None or e.method == "lt"  # no per-level top-1 was published for the private tickets
    if e.compression == "dense":
        assert e.sparsity == 0.0 and e.parent is None and e.obtainable == "yes"
    else:
        assert e.parent and e.substitute is not None and e.notes
        assert e.sparsity is not None or e.method == "gmp"
    if e.method in {"acdc", "rigl"}:
        assert e.sparsity == int(tag_number(name)) / 100
    if e.method == "lt":
        assert e.sparsity == pytest.approx(1 - tag_number(name) / 100)


def tag_number(name: str) -> float:
    return float(re.search(r"-([\d.]+)$", name)[1])


def test_resnet_zoo_covers_the_paper():
    expected = {"resnet18/dense", "resnet34/dense", "resnet50/dense", "resnet50/dense-v1", "resnet18/gmp",
                "resnet34/gmp", *(f"resnet50/acdc-{s}" for s in (80, 90, 95, 98)),
                *(f"resnet50/rigl-{s}" for s in (80, 90, 95))}
    assert expected <= set(RESNETS)
    lt = [get_entry(n) for n in list_models("resnet50/lt-*")]
    assert sorted(tag_number(e.name) for e in lt) == [11.571, 14.671, 18.664, 23.807, 30.407, 38.793, 49.35,
                                                       62.575, 79.122]
    # one file per level, sparser levels at higher state index
    by_k = sorted(lt, key=lambda e: int(re.search(r"dyn4_(\d+)_", e.filename)[1]))
    assert [e.sparsity for e in by_k] == sorted(e.sparsity for e in lt)


def test_dense_top1_is_torchvision_published():
    from torchvision.models import ResNet50_Weights

    assert get_entry("resnet50/dense").top1 == ResNet50_Weights.IMAGENET1K_V2.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert get_entry("resnet50/dense-v1").top1 == 76.13


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'resnet50/acdc-90'"):
        create_model("resnet50/acdc90")


def test_imagenet_classes_offline():
    classes = imagenet_classes()
    assert len(classes) == 1000 and classes[0] == "tench" and classes[-1] == "toilet tissue"
    classes.append("x")  # callers get a copy
    assert len(imagenet_classes()) == 1000


# ------------------------------------------------------------------------------------------------ upstream

COLORS = {"a_red": (255, 0, 0), "b_green": (0, 255, 0), "c_blue": (0, 0, 255)}


def mean_rgb_entry() -> ModelEntry:
    """A registry model that predicts the dominant colour channel: its accuracy on a folder is known a priori."""

    def load(entry: ModelEntry) -> SourceModel:
        module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return SourceModel(entry.name, module, canvas_size=24, num_classes=3,
                           provenance={"eval_resize": 28, "interpolation": "bicubic"})

    return ModelEntry(name="test/meanrgb", arch="test", compression="dense", method="dense", loader=load,
                      top1=42.0, source="test", license="test")


@pytest.fixture
def val_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(_registry._ENTRIES, "test/meanrgb", mean_rgb_entry())
    root = tmp_path / "val"
    for folder, rgb in COLORS.items():
        (root / folder).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), rgb).save(root / folder / f"img{i}.png")
    Image.new("RGB", (40, 30), COLORS["a_red"]).save(root / "b_green" / "wrong.png")  # one mislabelled image
    return root


def test_upstream_measures_on_a_folder(val_folder):
    result = upstream_top1("test/meanrgb", val_folder, batch_size=3)
    assert result["kind"] == "measured" and result["n_images"] == 7
    assert result["top1"] == pytest.approx(100 * 6 / 7)
    assert result["published_top1"] == 42.0 and result["interpolation"] == "bicubic" and result["resize"] == 28


def test_upstream_limit_and_published(val_folder):
    assert upstream_top1("test/meanrgb", val_folder, limit=3)["n_images"] == 3
    published = upstream_top1("resnet50/acdc-90")
    assert published == {"name": "resnet50/acdc-90", "kind": "published", "top1": 75.03, "published_top1": 75.03,
                         "source": get_entry("resnet50/acdc-90").source}


def test_upstream_rejects_bad_folders(val_folder, tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        upstream_top1("test/meanrgb", tmp_path / "nowhere")
    (val_folder / "d_extra").mkdir()
    Image.new("RGB", (8, 8)).save(val_folder / "d_extra" / "x.png")
    with pytest.raises(SpecError, match="4 class folders but test/meanrgb has 3 classes"):
        upstream_top1("test/meanrgb", val_folder)


def test_mean_rgb_model_is_what_the_test_assumes():
    # the dominant channel survives ImageNet normalisation, so the fixture's accuracy is known
    x = torch.zeros(3, 3, 1, 1)
    for i in range(3):
        x[i, i] = 1.0
    mean, std = torch.tensor(_registry.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(_registry.IMAGENET_STD)
    assert ((x - mean) / std.view(1, 3, 1, 1)).flatten(1).argmax(1).tolist() == [0, 1, 2]
