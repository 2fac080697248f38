"""``authors_load``: the authors' fork's loading code replayed on files in the real published layouts.

The SparseZoo GMP ResNet-18 file is written in SparseML's key layout (``input.conv``, ``sections.{s}.{b}``,
``identity``, ``classifier.fc``, inside ``{"state_dict": ...}``), as ``tests/test_models_resnet.py`` does;
the fork's ``load_state_dict(strict=False)`` into torchvision must then load nothing.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from vpcost_utils import paths
from vpcost_utils.models import authors, get_entry, resnet
from vpcost_utils.models import resnet_fakes as fakes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(isolated_home, monkeypatch):
    monkeypatch.setenv("VPCOST_OFFLINE", "1")
    return paths.checkpoints_dir()


def pruned_resnet18(seed: int = 0) -> nn.Module:
    """A random torchvision ResNet-18 with 80 % of every conv but the stem zeroed (passes our GMP check)."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and name != "conv1":
                m.weight.mul_(m.weight.abs() > m.weight.abs().flatten().kthvalue(int(0.8 * m.weight.numel())).values)
    return model.eval()


def save_gmp(home, state_dict: dict) -> None:
    path = home / get_entry("resnet18/gmp").filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 99, "arch_key": "resnet18", "state_dict": state_dict}, path)


def test_sparseml_named_file_loads_nothing_into_torchvision(home):
    saved = pruned_resnet18()
    save_gmp(home, fakes.to_sparseml(saved.state_dict())["state_dict"])
    result = authors.authors_load("resnet18/gmp")
    r = result.report
    n = len(saved.state_dict())
    assert r.present and r.replayed and r.error is None
    assert (r.in_file, r.loaded, r.network) == (n, 0, n)
    assert len(r.missing) == n and len(r.unexpected) == n and "input.conv.weight" in r.unexpected
    assert not torch.equal(result.module.conv1.weight, saved.conv1.weight)  # torchvision's random init stayed
    assert "random initialisation" in r.note
    table = authors.compare(["resnet18/dense", "resnet18/gmp"])
    row = table.set_index("model").loc["resnet18/gmp"]
    assert row["loaded by authors' code"] == 0 and row["loaded by ours"] == n and row["tensors in file"] == n


def test_torchvision_named_file_loads_every_tensor(home):
    saved = pruned_resnet18()
    save_gmp(home, saved.state_dict())
    result = authors.authors_load("resnet18/gmp")
    r = result.report
    assert r.loaded == r.in_file == r.network == len(saved.state_dict()) and not r.missing and not r.unexpected
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(result.module(x), saved(x))


def test_shape_mismatch_raises_even_with_strict_false(home):
    sd = pruned_resnet18().state_dict()
    sd["fc.weight"] = torch.zeros(10, 512)
    save_gmp(home, sd)
    r = authors.authors_load("resnet18/gmp").report
    assert r.mismatched == ["fc.weight"] and r.loaded == 0 and "size mismatch" in r.error


def small_resnet50() -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=4).eval()


@pytest.mark.parametrize("prefix,unmasked", [("model.", True), ("", False)])
def test_lottery_ticket_loader_as_the_fork_runs_it(home, monkeypatch, prefix, unmasked):
    """With a ``model.`` prefix the fork's second loop overwrites every masked weight with the unmasked one."""
    monkeypatch.setattr(resnet, "build_torchvision", lambda arch: small_resnet50())
    torch.manual_seed(0)
    dense = small_resnet50().state_dict()
    masks = {k: (torch.rand_like(v) > 0.8).float() for k, v in dense.items() if k.endswith("conv2.weight")}
    entry = get_entry("resnet50/lt-11.571")
    home.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in dense.items()}, home / entry.filename)
    torch.save({prefix + k: v for k, v in masks.items()}, home / resnet.lt_mask_filename(entry.filename))
    result = authors.authors_load("resnet50/lt-11.571")
    r = result.report
    assert r.error is None and r.loaded == r.network == len(dense)
    assert r.unmasked == (len(masks) if unmasked else 0)
    key = next(iter(masks))
    got = result.module.state_dict()[key]
    expected = dense[key] if unmasked else dense[key] * masks[key]
    assert torch.equal(got, expected)


def test_acdc_is_not_replayed_but_counted(home):
    entry = get_entry("resnet50/acdc-90")
    home.mkdir(parents=True, exist_ok=True)
    sd = {"module.conv1.weight": torch.zeros(4, 3, 7, 7), "module.fc.bias": torch.zeros(10)}
    torch.save({"epoch": 1, "model_config": {"arch": "resnet50"}, "model_state_dict": sd}, home / entry.filename)
    r = authors.authors_load("resnet50/acdc-90").report
    assert r.present and not r.replayed and r.in_file == 2 and r.loaded is None and "c1d1a73" in r.loader


def test_absent_files_and_models_made_here(home):
    r = authors.authors_load("resnet34/gmp").report
    assert not r.present and r.loaded is None
    table = authors.compare(["smallcnn/dense", "smallcnn/prune-90"])  # the smoke profile: no paper files
    assert set(table["file"]) == {"file not present"}
    assert {"resnet18/gmp", "resnet50/acdc-98", "resnet50/rigl-95", "resnet50/lt-79.122"} <= set(table["model"])
    with pytest.raises(ValueError, match="not one of the paper's checkpoints"):
        authors.authors_load("smallcnn/prune-90")
