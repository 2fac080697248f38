"""``folder:<path>`` datasets: both layouts, the seeded split, the uint8 cache and every bad-input error."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from vpcost_utils import paths
from vpcost_utils.data import check_shots, folder, get_dataset_info, load_split, scan_folder
from vpcost_utils.errors import DatasetFileError, DatasetLayoutError, SpecError, UnknownNameError

COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "eel": (0, 0, 255)}


def write_images(folder, counts: dict[str, int], size=(20, 14)) -> None:
    """``counts[cls]`` PNGs of one flat colour per class under ``folder/<cls>/``."""
    for cls, n in counts.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, COLOURS.get(cls, (i, i, i))).save(folder / cls / f"{i:03d}.png")


@pytest.fixture
def one_tree(tmp_path, isolated_home):
    root = tmp_path / "pets"
    write_images(root, {"cat": 10, "dog": 10, "eel": 5})
    return root


def test_one_tree_is_split_stratified_seeded_and_recorded(one_tree):
    name = f"folder:{one_tree}"
    src = scan_folder(name)
    assert src.layout == "one tree" and src.classes == ("cat", "dog", "eel")
    assert src.counts("test") == {"cat": 2, "dog": 2, "eel": 1}  # 20 % of each class
    train, test = ({p for p, _ in src.files[s]} for s in ("train", "test"))
    assert not train & test and len(train | test) == 25
    assert scan_folder(name).files == src.files  # deterministic
    other = scan_folder(f"{name}?split_seed=1")
    assert {p for p, _ in other.files["test"]} != test and other.fingerprint != src.fingerprint
    info = get_dataset_info(name)
    assert info.num_classes == 3 and info.input_size == 128
    assert "test_size=0.2" in info.notes and "random_state=0" in info.notes
    assert src.provenance()["split_seed"] == 0 and src.provenance()["n_test"] == 5
    assert scan_folder(f"{name}?test_fraction=0.4").counts("test") == {"cat": 4, "dog": 4, "eel": 2}


def test_load_split_decodes_colours_labels_and_size(one_tree):
    name = f"folder:{one_tree}?size=16"
    train = load_split(name, "train")
    assert train.name == name and train.classes == ["cat", "dog", "eel"]
    assert train.images.dtype == torch.uint8 and train.images.shape == (20, 3, 16, 16)
    for label, cls in enumerate(train.classes):
        pixels = train.images[train.labels == label]
        assert torch.all(pixels == torch.tensor(COLOURS[cls], dtype=torch.uint8).view(1, 3, 1, 1))
    assert load_split(name, "test", size=8).images.shape == (5, 3, 8, 8)  # load_split's size wins


def test_second_load_reads_the_cache_and_an_edit_invalidates_it(one_tree, monkeypatch):
    calls = []
    real = folder._decode
    monkeypatch.setattr(folder, "_decode", lambda *a: calls.append(a[1]) or real(*a))
    name = f"folder:{one_tree}?size=8"
    first = load_split(name, "train")
    again = load_split(name, "train")
    assert calls == ["train"] and torch.equal(first.images, again.images)
    assert len(list(paths.tensors_dir().glob("folder-*_train_8px_v*.pt"))) == 1
    write_images(one_tree, {"dog": 12})  # two more dog images (and ten rewritten ones)
    edited = load_split(name, "train")
    assert calls == ["train", "train"]
    src = scan_folder(name)
    assert len(edited) == len(src.files["train"]) and len(src.files["train"]) + len(src.files["test"]) == 27


def test_train_test_layout_and_a_class_missing_from_test(tmp_path, isolated_home):
    root = tmp_path / "leaves"
    write_images(root / "train", {"cat": 3, "dog": 4})
    write_images(root / "test", {"cat": 2, "dog": 1})
    src = scan_folder(f"folder:{root}")
    assert src.layout == "train/test" and src.counts("train") == {"cat": 3, "dog": 4}
    assert src.test_fraction is None and "own train/ and test/" in get_dataset_info(f"folder:{root}").notes
    assert len(load_split(f"folder:{root}?size=8", "test")) == 3
    write_images(root / "train", {"eel": 2})
    with pytest.raises(DatasetLayoutError, match=r"class 'eel'.*missing from test/"):
        scan_folder(f"folder:{root}")
    with pytest.raises(DatasetLayoutError, match="would be ignored"):
        scan_folder(f"folder:{root}?test_fraction=0.3")


def test_layout_errors_name_the_problem(tmp_path, isolated_home):
    root = tmp_path / "d"
    write_images(root, {"cat": 3, "dog": 3})
    (root / "eel").mkdir()
    (root / "eel" / "notes.txt").write_text("no image here")
    with pytest.raises(DatasetLayoutError, match="class 'eel' has no images"):
        scan_folder(f"folder:{root}")
    (root / "eel" / "notes.txt").unlink()
    write_images(root, {"eel": 1})
    with pytest.raises(DatasetLayoutError, match="class 'eel' has 1 image"):
        scan_folder(f"folder:{root}")
    half = tmp_path / "half"
    write_images(half / "train", {"cat": 2})
    with pytest.raises(DatasetLayoutError, match="has train/ but no test/"):
        scan_folder(f"folder:{half}")
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        scan_folder(f"folder:{tmp_path / 'absent'}")
    with pytest.raises(UnknownNameError, match="test_fraction"):
        scan_folder(f"folder:{root}?test_frac=0.3")
    with pytest.raises(SpecError, match="test_fraction must be in"):
        scan_folder(f"folder:{root}?test_fraction=1.5")


def test_unreadable_image_names_the_file(tmp_path, isolated_home):
    root = tmp_path / "d"
    write_images(root, {"cat": 3, "dog": 3})
    bad = root / "dog" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetFileError, match="broken.jpg cannot be read as an image"):
        load_split(f"folder:{root}?size=8&test_fraction=0.5", "train")
        load_split(f"folder:{root}?size=8&test_fraction=0.5", "test")


def test_check_shots_names_the_short_classes(one_tree):
    name = f"folder:{one_tree}"
    check_shots(name, 4)  # the smallest class (eel) has 4 training images
    check_shots(name, None)
    with pytest.raises(DatasetLayoutError, match=r"n_shots=5 .*'eel' \(4\).*lower N to 4"):
        check_shots(name, 5)


def test_hidden_files_are_skipped_and_unknown_names_list_the_folder_form(one_tree):
    (one_tree / "cat" / ".DS_Store").write_bytes(b"\0")
    os.makedirs(one_tree / ".thumbnails")
    assert scan_folder(f"folder:{one_tree}").classes == ("cat", "dog", "eel")
    with pytest.raises(UnknownNameError, match="folder:<path>"):
        get_dataset_info("not_a_dataset")


def test_the_planner_counts_a_folder_set_so_submitit_can_pack_its_runs(one_tree):
    """``sweep.chunk_specs`` sizes runs with ``plan.run_passes``; a ``folder:`` set used to be sent to the text
    loader there and rejected as an unknown dataset, so a report on one could not be packed into jobs."""
    from vpcost_utils.config import RunSpec
    from vpcost_utils.running import plan
    from vpcost_utils.running.sweep import chunk_specs

    name = f"folder:{one_tree}?size=16"
    assert plan.split_sizes(name) == (20, 5, 3)
    specs = [RunSpec("smallcnn/dense", name, method="ilm", n_shots=n, epochs=2, eval_every=1) for n in (1, 2)]
    assert plan.run_passes(specs[1]).train == 2 * 2 * 3  # 2 shots x 3 classes x 2 epochs
    assert sorted(len(c) for c in chunk_specs(specs, max_jobs=2)) == [1, 1]
