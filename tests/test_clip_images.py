"""CLIP's image pipeline: the tensor transform equals CLIP's own PIL transform; the bounded-size cache."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from skimage import data as skdata
from torchvision import transforms
from torchvision.transforms.functional import pil_to_tensor

from vpcost_utils.clip import images as clip_images
from vpcost_utils.clip.classnames import class_name_source, class_names_for
from vpcost_utils.clip.images import ClipImages, _ClipDecode, _pack
from vpcost_utils.clip.transform import output_geometry, resize_crop
from vpcost_utils.config import RunSpec
from vpcost_utils.errors import UnknownNameError

SIZE = 336
# Tolerance of the match with PIL, in uint8 levels: none. The transform redoes Pillow's integer
# arithmetic (docs/clip_and_crossmodal.md); torch's own bicubic with antialias=True differs from PIL
# by up to 7 levels (mean about 0.15) on these photos, and the former squash to 336 x 336 bilinear by
# 8-60 levels on average.
TOLERANCE = 0


def clip_reference(image: Image.Image, size: int = SIZE) -> torch.Tensor:
    """CLIP's own transform before ToTensor: Resize(size, BICUBIC) of the short side, CenterCrop(size)."""
    reference = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                                    transforms.CenterCrop(size)])
    return pil_to_tensor(reference(image))


@pytest.mark.parametrize("photo,shape", [("chelsea", None), ("coffee", None), ("rocket", (61, 37)),
                                         ("astronaut", (45, 120)), ("coffee", (351, 300)), ("chelsea", (340, 700))])
def test_transform_matches_clips_own_on_non_square_images(photo, shape):
    image = Image.fromarray(getattr(skdata, photo)()).convert("RGB")  # chelsea 451x300 (up), coffee 600x400 (down)
    if shape is not None:
        image = image.resize((shape[1], shape[0]), Image.BILINEAR)
    assert image.size[0] != image.size[1]
    ours = resize_crop(pil_to_tensor(image)[None], SIZE)[0]
    diff = (ours.int() - clip_reference(image).int()).abs()
    assert ours.shape == (3, SIZE, SIZE) and int(diff.max()) <= TOLERANCE


def test_geometry_is_torchvisions_truncation_and_rounded_centre():
    assert output_geometry(300, 451, 336) == (336, 505, 0, 84)  # int(336 * 451 / 300) = 505, round(169 / 2) = 84
    assert output_geometry(400, 600, 336) == (336, 504, 0, 84)
    assert output_geometry(32, 32, 336) == (336, 336, 0, 0)


def test_square_images_at_the_resolution_pass_unchanged():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(resize_crop(x, 32), x)


def test_batches_mix_shapes_and_equal_the_reference_per_image():
    photos = [Image.fromarray(skdata.chelsea()).resize(s) for s in ((50, 30), (30, 50), (50, 30), (64, 64))]
    photos = [p.convert("RGB") for p in photos]
    pixels, offsets, shapes = _pack([pil_to_tensor(p) for p in photos])
    data = ClipImages("x", "train", pixels, offsets, shapes, torch.arange(4), ["a", "b", "c", "d"])
    batch = data.batch(torch.tensor([3, 0, 1, 2]), 40, "cpu")
    for row, i in enumerate((3, 0, 1, 2)):
        assert torch.equal(batch[row], clip_reference(photos[i], 40))


def test_cache_keeps_small_images_as_decoded_and_large_ones_as_clips_output():
    decode = _ClipDecode(SIZE)
    small = Image.fromarray(skdata.chelsea()).resize((200, 120))  # short side < 336: stored as is
    large = Image.fromarray(skdata.coffee())  # 600 x 400: stored as CLIP's 336 x 336 output
    assert decode(small).shape == (3, 120, 200)
    stored = decode(large)
    assert stored.shape == (3, SIZE, SIZE) and torch.equal(stored, clip_reference(large.convert("RGB")))
    assert torch.equal(resize_crop(stored[None], SIZE)[0], stored)  # the device transform leaves it alone


def test_cache_file_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in ((5, 7), (9, 4), (5, 7))]
    pixels, offsets, shapes = _pack(images)
    data = ClipImages("x", "test", pixels, offsets, shapes, torch.tensor([0, 1, 1]), ["a", "b"])
    path, key = tmp_path / "c.pt", ("x", "test", 336, "1", "1")
    clip_images._save(data, path, key)
    back = clip_images._load(path, key, "x", "test")
    assert back is not None and back.classes == ["a", "b"] and torch.equal(back.labels, data.labels)
    assert all(torch.equal(back.image(i), images[i]) for i in range(3))
    with pytest.warns(UserWarning, match="built for"):
        assert clip_images._load(path, ("x", "test", 224, "1", "1"), "x", "test") is None


def test_generated_sets_are_read_at_their_own_size(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    import vpcost_utils.clip  # noqa: F401  (registers synth_colours)

    data = clip_images.load_clip_split("synth_colours", "test", 64)
    assert tuple(data.shapes[0].tolist()) == (32, 32) and data.batch(torch.tensor([0, 1]), 64, "cpu").shape[-1] == 64


def test_class_name_sources():
    ours = ["speed limit 20 km/h"] + [f"sign {i}" for i in range(42)]
    assert class_names_for("gtsrb", ours, "descriptive") == ours
    fork = class_names_for("gtsrb", ours, "fork")
    assert fork[0] == "20_speed" and fork[6] == "80_lifted" and fork[42] == "lifted_no_overtaking_trucks"
    assert class_names_for("eurosat", list("abcdefghij"), "fork")[0] == "annualcrop"
    assert class_names_for("eurosat", list("abcdefghij"), "fork")[-1] == "sealake"
    assert class_names_for("caltech101", [f"c{i}" for i in range(101)], "fork")[5] == "5"
    assert class_names_for("flowers102", [f"c{i}" for i in range(102)], "fork")[-1] == "101"
    assert class_names_for("cifar10", ["airplane"] * 10, "fork") == ["airplane"] * 10  # the fork names it as we do
    assert class_names_for("synth_colours", ["red"], "fork") == ["red"]
    with pytest.raises(UnknownNameError):
        class_names_for("gtsrb", ours, "wordnet")


def test_class_name_source_defaults_for_specs_without_the_field():
    spec = RunSpec(model="m", dataset="gtsrb", task="clip", method="single-tp-vp")
    assert class_name_source(spec) == "descriptive"
    assert spec.run_id == RunSpec(model="m", dataset="gtsrb", task="clip", method="single-tp-vp").run_id



def test_paper_dataset_path_decodes_once_into_a_bounded_cache(tmp_path, monkeypatch):
    """A stand-in torchvision source (one small and one large photo) through the real decode, cache and reload."""
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.data import vision

    photos = [Image.fromarray(skdata.chelsea()).resize((200, 120)), Image.fromarray(skdata.coffee())]

    class FakeDataset:
        def __init__(self, transform):
            self.transform, self.targets = transform, [0, 1]

        def __len__(self):
            return len(photos)

        def __getitem__(self, i):
            return self.transform(photos[i]), self.targets[i]

    source = vision._SOURCES["dtd"]
    fake = vision._Source(source.tv_class, source.tv_kwargs, source.expected, source.url,
                          lambda d: d.targets, lambda d: ["cat", "cup"], 128, 2, "stand-in")
    monkeypatch.setitem(vision._SOURCES, "fake_photos", fake)
    opened = []
    monkeypatch.setattr(vision, "_open", lambda name, split, root, transform: opened.append(name) or
                        FakeDataset(transform))
    data = clip_images.load_clip_split("fake_photos", "train", SIZE)
    assert data.shapes.tolist() == [[120, 200], [SIZE, SIZE]] and data.classes == ["cat", "cup"]
    assert data.nbytes() == 3 * 120 * 200 + 3 * SIZE * SIZE  # not 2 x 3 x 336^2, nor the 600 x 400 original
    again = clip_images.load_clip_split("fake_photos", "train", SIZE)
    assert opened == ["fake_photos"] and clip_images.cache_path("fake_photos", "train", SIZE).is_file()
    batch = again.batch(torch.tensor([1, 0]), SIZE, "cpu")
    assert torch.equal(batch[0], clip_reference(photos[1].convert("RGB")))
    assert torch.equal(batch[1], clip_reference(photos[0].convert("RGB")))


def test_class_name_source_is_a_spec_field_that_keeps_old_run_ids():
    from vpcost_utils import grids
    from vpcost_utils.config import RunSpec
    from vpcost_utils.errors import SpecError, UnknownNameError

    spec = RunSpec("tinyclip/dense", "synth_colours", method="vp", task="clip")
    fork = spec.replace(class_names="fork")
    assert fork.run_id != spec.run_id and class_name_source(fork) == "fork" and class_name_source(spec) == "descriptive"
    with pytest.raises(SpecError, match="only applies to task='clip'"):
        RunSpec("smallcnn/dense", "digits", class_names="fork")
    with pytest.raises(UnknownNameError, match="fork"):
        spec.replace(class_names="ours")
    paper = grids.section_runs("clip", "paper")
    assert paper and {s.class_names for s in paper} == {"fork"}


@pytest.mark.parametrize("loader", ["vp", "clip"])
def test_both_image_loaders_refuse_labels_without_class_names(tmp_path, monkeypatch, loader):
    """Incomplete files (a label past the class list) stop the VP and the CLIP decode alike: both open the split
    through ``vision.open_split``, so neither can cache images under the wrong class."""
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.data import vision
    from vpcost_utils.errors import VpcostError

    class FakeDataset:
        targets = [0, 2]

        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return self.transform(Image.new("RGB", (40, 30))), self.targets[i]

    source = vision._SOURCES["dtd"]
    fake = vision._Source(source.tv_class, source.tv_kwargs, source.expected, source.url,
                          lambda d: d.targets, lambda d: ["cat", "cup"], 32, 2, "stand-in")
    monkeypatch.setitem(vision._SOURCES, "fake_photos", fake)
    monkeypatch.setattr(vision, "_open", lambda name, split, root, transform: FakeDataset(transform))
    with pytest.raises(VpcostError, match=r"labels span 0\.\.2 but there are 2 class names"):
        if loader == "vp":
            vision._decode("fake_photos", "train", None, 32)
        else:
            clip_images.load_clip_split("fake_photos", "train", SIZE)
