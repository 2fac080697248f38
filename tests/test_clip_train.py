"""CLIP visual prompting end to end on the generated colour task, with a briefly pretrained tinyclip."""

from __future__ import annotations

import pytest
import torch

from vpcost_utils.config import RunSpec
from vpcost_utils.errors import SpecError

QUICK = "testclip/quick"


@pytest.fixture(scope="module")
def quick_clip(tmp_path_factory):
    """tinyclip pretrained for 80 small steps only (the cached smoke model: 200 x 64), registered as a CLIP entry."""
    from vpcost_utils.clip.tiny import pretrain_tinyclip
    from vpcost_utils.models import ModelEntry, list_models, register
    from vpcost_utils.models.clip_models import _source_model

    if QUICK not in list_models():
        model = pretrain_tinyclip(steps=80, batch=32)
        register(ModelEntry(QUICK, arch="tinyclip", compression="dense", method="dense",
                            loader=lambda entry: _source_model(entry, model)))
    return QUICK


@pytest.mark.parametrize("method", ["ilm-vp", "vp", "single-tp-vp"])
def test_prompting_trains_above_chance_quickly(quick_clip, tmp_path, monkeypatch, method):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.clip import run_clip

    spec = RunSpec(model=quick_clip, dataset="synth_colours", task="clip", method=method, epochs=3, batch_size=32,
                   eval_every=1)
    record = run_clip(spec, progress=False)
    assert record["metrics"]["acc"] > 100 / 8 + 25, record["metrics"]["acc"]
    assert record["curves"]["train_loss"][-1] < record["curves"]["train_loss"][0]
    assert record["data"]["steps"] == 3 * 10 and record["data"]["resolution"] == 32
    assert record["data"]["templates"] == (81 if method == "ilm-vp" else 1)
    if method == "ilm-vp":
        rows = record["data"]["mapping_history"]
        assert len(rows) == 3 and all(0 <= r < 81 * 8 for r in rows[-1]) and len(set(rows[-1])) == 8
    else:
        assert record["mapping"] == list(range(8))
        assert record["data"]["warmup_steps"] == (3 if method == "vp" else 0)
    assert record["data"]["prompt"] == ("pads" if method == "vp" else "border")
    assert record["data"]["class_names"] == "descriptive" and record["classes"][0] == "red"
    assert "Resize(S, bicubic)" in record["data"]["preprocessing"]


def test_bad_class_name_fails_before_training(quick_clip, monkeypatch):
    from vpcost_utils.clip import train_clip as clip_train
    from vpcost_utils.clip.images import ClipImages

    def fake_split(name, split, size):
        images = torch.zeros(4, 3, size, size, dtype=torch.uint8)
        return ClipImages.from_tensor(name, split, images, torch.tensor([0, 1, 0, 1]), ["red", "gr\u00fcn"])

    monkeypatch.setattr(clip_train, "load_clip_split", fake_split)
    with pytest.raises(SpecError, match="gr\u00fcn"):
        clip_train.run_clip(RunSpec(model=quick_clip, dataset="x", task="clip", method="vp", epochs=1),
                            progress=False)


def test_non_clip_model_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    from vpcost_utils.clip import run_clip
    from vpcost_utils.models import ModelEntry, SourceModel, list_models, register

    if "testcnn/plain" not in list_models():
        register(ModelEntry("testcnn/plain", arch="testcnn", compression="dense", method="dense",
                            loader=lambda e: SourceModel(e.name, torch.nn.Identity(), provenance={"name": e.name})))
    with pytest.raises(SpecError, match="not a CLIP model"):
        run_clip(RunSpec(model="testcnn/plain", dataset="synth_colours", task="clip", method="vp", epochs=1))
