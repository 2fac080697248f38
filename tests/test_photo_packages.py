"""The Debian photographs (issue #36): pins, the split by photograph, refusals, and the paper's compression levels."""

import copy
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch

from vpcost_utils import fetch
from vpcost_utils.built import natural_images as library
from vpcost_utils.built import photo_packages as pp
from vpcost_utils.built.distill import Recipe
from vpcost_utils.errors import SpecError


def test_every_photograph_is_pinned_three_times_and_named_once():
    assert len(pp.PHOTOS) == 36
    for p in pp.PHOTOS:
        assert p.registry == "debian" and "=" in p.package  # the package version
        assert len(p.archive_sha256) == 64 and len(p.sha256) == 64 and p.license and p.author
        assert p.archive.startswith(p.package.split("=")[0] + "_")
    names = [p.name for p in pp.PHOTOS]
    assert len(set(names)) == len(names) and len({p.filename for p in pp.PHOTOS}) == len(names)
    assert not set(names) & set(library.natural_images())  # never shadows a library photograph


def test_the_held_out_photographs_come_from_different_packages_and_never_calibrate():
    debian = [p for p in pp.PHOTOS if p.held_out]
    assert len({p.package for p in debian}) == len(debian) >= 3
    assert set(library.HELD_OUT) <= set(pp.HELD_OUT)
    everything = pp.calibration_names()
    assert len(everything) == 12 + 36 - len(debian) and not set(everything) & set(pp.HELD_OUT)
    # nested: the first twelve are the library's calibration set the earlier recipes used
    assert pp.calibration_names(12) == pp.LIBRARY_CALIBRATION == tuple(sorted(library.photographs("calibration")))
    assert pp.calibration_names(20) == everything[:20]
    with pytest.raises(SpecError, match="choose 1..44"):
        pp.calibration_names(45)


@pytest.mark.parametrize("leak", ["mate/LadyBird", "chelsea", "plasma/ColorfulCups"])
def test_a_recipe_naming_a_held_out_photograph_is_refused(leak):
    photos = (*pp.calibration_names(13), leak)
    with pytest.raises(SpecError, match=f"held-out photograph.*{leak}"):
        Recipe("sparse", sparsity=0.5, photos=photos)
    with pytest.raises(SpecError, match="held-out"):
        pp.distillation_crops_of(photos, 4, 16, seed=0)
    with pytest.raises(SpecError, match="held-out"):
        pp.calibration_crops_of(photos, 4, 16, seed=0)


def test_the_photographs_field_keeps_old_keys_and_changes_new_ones():
    # prune-50-recovered's key, as cached since before the field existed: it must not move
    assert Recipe("sparse", sparsity=0.5).key() == "06807ade01f2"
    a = Recipe("sparse", sparsity=0.5, photos=list(pp.calibration_names(13)))
    assert isinstance(a.photos, tuple) and a.key() != "06807ade01f2"
    assert a.key() != Recipe("sparse", sparsity=0.5, photos=pp.calibration_names(14)).key()


@pytest.fixture
def fake_photographs(monkeypatch):
    """Calibration photographs black, held-out ones white: a held-out pixel in a calibration crop would show."""
    black = {n: torch.zeros(3, 60, 80, dtype=torch.uint8) for n in ("china", "flower", "astronaut")}
    white = {n: torch.full((3, 60, 80), 255, dtype=torch.uint8) for n in library.HELD_OUT}
    monkeypatch.setattr(library, "_decoded", lambda: tuple(sorted({**black, **white}.items())))
    ours = {p.name: torch.full((3, 50, 70), 255 if p.held_out else 0, dtype=torch.uint8) for p in pp.PHOTOS}
    monkeypatch.setattr(pp, "_decoded", lambda: tuple(ours.items()))


def test_crops_never_hold_a_held_out_pixel(fake_photographs):
    names = ("china", "flower", "astronaut", *(p.name for p in pp.PHOTOS if not p.held_out))
    assert int(pp.distillation_crops_of(names, 64, 16, seed=0).max()) == 0
    assert int(pp.calibration_crops_of(names, 64, 16, seed=0).max()) == 0
    held = pp.held_out_crops(16, per_photo=4)
    assert held.shape == (4 * len(pp.HELD_OUT), 3, 16, 16) and int(held.min()) == 255
    with pytest.raises(SpecError, match="unknown calibration photograph.*camera"):  # absent here
        pp.calibration_crops_of(("camera",), 2, 16, seed=0)
    # the same call, the same crops: the recipes are deterministic from their seed
    assert torch.equal(pp.distillation_crops_of(names, 8, 16, seed=3), pp.distillation_crops_of(names, 8, 16, seed=3))


def test_held_out_agreement_is_per_photograph_and_exact_for_the_model_itself(fake_photographs):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    mean, std = (0.5,) * 3, (0.25,) * 3
    out = pp.held_out_agreement(net, net, mean, std)
    assert out["agreement_224"] == out["agreement_128"] == 100.0 and out["kl_224"] == 0.0
    assert sorted(out["per_photo_128"]) == sorted(pp.HELD_OUT)
    other = copy.deepcopy(net)
    with torch.no_grad():
        other[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 100.0]))  # always class 3: agrees only where dense says 3
    assert pp.held_out_agreement(other, net, mean, std)["kl_224"] > 0


def _deb(path: Path, members: dict[str, bytes]) -> Path:
    def entry(name: str, data: bytes) -> bytes:
        return f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(b"!<arch>\n" + entry("debian-binary", b"2.0\n") + entry("data.tar.xz", buffer.getvalue()))
    return path


def _jpeg(w: int, h: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


def test_photographs_come_out_of_the_package_and_a_changed_package_is_refused(tmp_path, monkeypatch):
    photo = _jpeg(1024, 2048)
    deb = _deb(tmp_path / "pics_1.0-1_all.deb", {"usr/share/backgrounds/a.jpg": photo})
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    file = pp.PhotoFile(registry="debian", package="pics=1.0-1", archive=deb.name,
                        archive_sha256=sha(deb.read_bytes()), member="usr/share/backgrounds/a.jpg", sha256=sha(photo),
                        license="CC0-1.0", name="pics/a", author="nobody")
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPCOST_OFFLINE", "0")
    monkeypatch.setattr(fetch, "_client", lambda f, dest: ["cp", str(deb), str(dest / f.archive)])
    path = pp.fetch_photos((file,), progress=False)["pics/a"]
    assert path.name == "pics--a.jpg" and path.read_bytes() == photo
    image = pp.decode(path)
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 1024, 512)  # short side to 512
    # Debian replaced the package: the archive no longer matches its pin
    path.unlink()
    _deb(deb, {"usr/share/backgrounds/a.jpg": _jpeg(64, 64)})
    with pytest.raises(fetch.FetchError, match=r"pics=1\.0-1 no longer matches its pin.*update the version"):
        pp.fetch_photos((file,), progress=False)
    assert not path.exists()
    # a damaged copy in the cache is refused too, naming the package and the fix
    path.write_bytes(photo[:100])
    with pytest.raises(fetch.FetchError, match=r"pics=1\.0-1 no longer matches its pin.*delete the package's files"):
        pp.fetch_photos((file,), progress=False)


# -- the paper's compression levels as registry models ---------------------------------------------------------

def test_the_papers_levels_are_registered():
    from vpcost_utils.models import get_entry

    for percent in (50, 80, 90):
        assert get_entry(f"efficientnet_lite0/prune-{percent}").sparsity == percent / 100
    for bits in (4, 3, 2):
        assert get_entry(f"efficientnet_lite0/w{bits}a{bits}").bits == bits
    entry = get_entry("efficientnet_lite0/prune-50-wallpapers")
    assert entry.sparsity == 0.5 and "44 photographs" in entry.notes


@pytest.fixture(scope="module")
def random_lite0():
    from vpcost_utils.models.efficientnet_lite import build_timm

    torch.manual_seed(0)
    return build_timm(0).eval()


@pytest.mark.parametrize("percent", [80, 90])
def test_one_shot_80_and_90_percent_are_exact(random_lite0, percent):
    from vpcost_utils.built import efficientnet_lite_compressed as lite

    model = copy.deepcopy(random_lite0)
    report = lite.prune_one_shot(model, percent)
    layers = lite.pruned_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    assert zeros == report["zeros"] == round(percent / 100 * total)


@pytest.mark.parametrize("bits", [3, 2])
def test_w3a3_and_w2a2_keep_8_bit_first_and_last_layers(random_lite0, bits):
    from vpcost_utils.models.quantize import fake_quantize, quantized_bits

    model = fake_quantize(random_lite0, bits, [torch.randn(2, 3, 64, 64)], per_channel=True)
    widths = quantized_bits(model)
    assert widths.pop("conv_stem") == 8 and widths.pop("classifier") == 8
    layers = [n for n, m in random_lite0.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert set(widths.values()) == {bits} and len(widths) == len(layers) - 2 == 48  # every other conv, depthwise too
    acts = {n: m.input_quant.bits for n, m in model.named_modules() if hasattr(m, "input_quant")}
    assert acts.pop("conv_stem") == 8 and acts.pop("classifier") == 8 and set(acts.values()) == {bits}
    w = model.blocks[1][0].conv_pw.quantized_weight()  # a per-channel grid: at most 2^bits values per channel
    assert all(torch.unique(row).numel() <= 2 ** bits for row in w.reshape(w.shape[0], -1))
