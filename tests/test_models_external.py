"""Models from outside the registry: ``file:``, ``timm:``, ``torchvision:`` names and ``register_module``.

Pretrained timm / torchvision weights are not on this machine and tests never download, so those
loaders are tested for their offline errors and, with a weights file written here, for their config
plumbing (input size, normalisation and classes from the model's own config).
"""

from __future__ import annotations

import hashlib

import pytest
import timm
import torch
import torchvision
from PIL import Image
from torch import nn

from vpcost_utils import paths
from vpcost_utils.config import RunSpec
from vpcost_utils.errors import CheckpointError, MissingFileError, ModelOutputError, SpecError, UnknownNameError
from vpcost_utils.models import (
    check_model,
    create_model,
    external,
    get_entry,
    register_module,
    resnet,
    unregister_module,
)
from vpcost_utils.running.runs import run
from vpcost_utils.running.store import ResultStore

torch.set_num_threads(2)
TIMM_ARCH = "test_resnet"  # timm's tiny test network (0.5 M parameters, 160 px, mean = std = 0.5)


def random_timm(num_classes: int = 1000, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(TIMM_ARCH, pretrained=False, num_classes=num_classes).eval()


class TinyNet(nn.Module):
    """Conv, pool, linear: a K-way classifier small enough to prompt in a second."""

    def __init__(self, k: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().mean(dim=(2, 3)))


@pytest.fixture
def registered():
    names = []

    def add(name, module, **kw):
        kw.setdefault("mean", (0.5, 0.5, 0.5))
        kw.setdefault("std", (0.25, 0.25, 0.25))
        entry = register_module(name, module, **kw)
        names.append(name)
        return entry

    yield add
    for name in names:
        if name in external._ENTRIES:
            unregister_module(name)


# ------------------------------------------------------------------------------------------------ file:


def test_file_round_trip_gives_the_saved_modules_logits_and_records_the_file(tmp_path):
    module = random_timm(num_classes=10)
    with torch.no_grad():
        module.fc.weight[:, :32] = 0  # a known number of exact zeros to measure
    path = tmp_path / "net.pt"
    torch.save(module.state_dict(), path)
    name = f"file:{path}?arch=timm:{TIMM_ARCH}&num_classes=10&compression=unstructured"
    model = create_model(name)
    x = torch.randn(3, 3, 160, 160)
    assert torch.equal(model.module(x), module(x))
    assert model.canvas_size == 160 and model.mean == (0.5, 0.5, 0.5) and model.num_classes == 10
    p = model.provenance
    assert p["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and p["source_file"] == str(path)
    assert p["substitute"] is False and p["input_size"] == 160 and p["output_checked"]
    counted = [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in counted)
    assert p["zeros"] == zeros >= 320 and p["measured_sparsity"] == round(zeros / sum(w.numel() for w in counted), 6)
    assert p["bits_estimate"] is None  # float weights
    entry = get_entry(name)
    assert entry.compression == "unstructured" and entry.arch == TIMM_ARCH and entry.method == "file"


def test_file_unwraps_training_checkpoints_and_registry_archs_build(tmp_path):
    net = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    model = create_model(f"file:{path}?arch=resnet18&num_classes=5")
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.module(x), net(x)) and model.canvas_size == 224
    assert any("'state_dict'" in n for n in model.provenance["load_notes"])
    assert any("'module.'" in n for n in model.provenance["load_notes"])


def test_file_of_another_arch_or_head_is_a_clear_error(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(random_timm(num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"does not fit arch=resnet18: \d+ missing keys .*unexpected keys"):
        create_model(f"file:{path}?arch=resnet18")
    with pytest.raises(CheckpointError, match=r"fc.weight: file \(10, .*add &num_classes=10"):
        create_model(f"file:{path}?arch=timm:{TIMM_ARCH}")
    with pytest.raises(SpecError, match=r"add \?arch="):
        create_model(f"file:{path}")
    with pytest.raises(UnknownNameError, match="num_classes"):
        create_model(f"file:{path}?arch=resnet18&classes=10")
    with pytest.raises(UnknownNameError, match="architecture for file:"):
        create_model(f"file:{path}?arch=resnet19")
    with pytest.raises(MissingFileError, match="absent.pt"):
        create_model(f"file:{tmp_path / 'absent.pt'}?arch=resnet18")
    with pytest.raises(UnknownNameError, match="resnet50/dense"):
        get_entry(f"file:{path}?arch=resnet18&parent=resnet50/dens")


def test_measure_compression_estimates_bits_from_distinct_values():
    net = TinyNet()
    with torch.no_grad():
        net.conv.weight.copy_(torch.randint(-8, 8, net.conv.weight.shape) / 8)  # 16 levels: 4 bits
        net.fc.weight.copy_(torch.randint(-2, 2, net.fc.weight.shape) / 2)  # 4 levels: 2 bits
    m = external.measure_compression(net)
    assert m["bits_estimate"] == 4 and m["max_distinct_weights"] == 16
    assert m["measured_sparsity"] == round(m["zeros"] / (8 * 27 + 80), 6) and m["zeros"] > 0
    assert external.measure_compression(TinyNet())["bits_estimate"] is None


# --------------------------------------------------------------------------------------- timm, torchvision


def test_timm_offline_is_a_missing_file_naming_the_model_and_never_downloads(monkeypatch, tmp_path):
    import huggingface_hub

    calls = []

    def fake_download(repo, filename, **kw):
        calls.append(kw.get("local_files_only"))
        raise FileNotFoundError(filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(MissingFileError, match=r"resnet50\.a1_in1k.*huggingface\.co/timm/resnet50\.a1_in1k"):
        create_model("timm:resnet50.a1_in1k")
    assert calls and all(calls)  # local_files_only=True on every try
    with pytest.raises(UnknownNameError, match="timm pretrained model"):
        get_entry("timm:resnet50.not_a_tag")


def test_timm_config_sets_canvas_and_normalisation(monkeypatch, tmp_path):
    module = random_timm()
    path = tmp_path / "w.pth"
    torch.save(module.state_dict(), path)
    monkeypatch.setattr(external, "_timm_weights", lambda cfg, what: path)
    model = create_model(f"timm:{TIMM_ARCH}.r160_in1k")
    x = torch.randn(2, 3, 160, 160)
    assert torch.equal(model.module(x), module(x))
    assert (model.canvas_size, model.mean, model.std) == (160, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert model.provenance["weights"] == f"{TIMM_ARCH}.r160_in1k" and model.provenance["source"] == "timm"
    assert model.class_names[0] == "tench" and get_entry(f"timm:{TIMM_ARCH}").compression == "dense"


def test_torchvision_offline_error_and_config_plumbing(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("VPCOST_CHECKPOINTS", str(tmp_path / "ckpt"))
    with pytest.raises(MissingFileError, match=r"mobilenet_v3_small-047dcff4\.pth.*download\.pytorch\.org"):
        create_model("torchvision:mobilenet_v3_small.IMAGENET1K_V1")
    with pytest.raises(UnknownNameError, match="IMAGENET1K_V1"):
        get_entry("torchvision:mobilenet_v3_small.IMAGENET2K")
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None).eval()
    path = tmp_path / "mobilenet_v3_small-047dcff4.pth"  # not the real file: its hash prefix must be refused
    torch.save(net.state_dict(), path)
    monkeypatch.setattr(resnet, "fetch_hub_weights", lambda url, what: path)
    with pytest.raises(CheckpointError, match="corrupt"):
        create_model("torchvision:mobilenet_v3_small.IMAGENET1K_V1")
    fake = tmp_path / "mobilenet_v3_small.pth"  # a name without a hash prefix skips that check
    path.rename(fake)
    monkeypatch.setattr(resnet, "fetch_hub_weights", lambda url, what: fake)
    model = create_model("torchvision:mobilenet_v3_small")  # DEFAULT, recorded as the member it is
    x = torch.randn(2, 3, 224, 224)
    assert torch.equal(model.module(x), net(x))
    assert model.provenance["weights"] == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert model.canvas_size == 224 and model.std == (0.229, 0.224, 0.225) and model.class_names[1] == "goldfish"


def test_unknown_sources_list_the_known_forms():
    with pytest.raises(UnknownNameError, match="file:"):
        get_entry("hf:some/model")
    with pytest.raises(UnknownNameError, match=r"timm:<name>"):
        get_entry("resnet50/no-such-tag")


# ------------------------------------------------------------------------------- output check, register


def test_output_that_is_not_k_way_logits_is_refused_with_the_fix(registered):
    with pytest.raises(ModelOutputError, match=r"output shape \(2, 10\).*\(2, 1000\).*num_classes=10"):
        registered("tiny/dense", TinyNet(10), canvas=32)  # declared 1000-way by default
    features = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ModelOutputError, match=r"output shape \(2, 4, 30, 30\).*features"):
        registered("tiny/features", features, canvas=32, num_classes=4)

    class Pair(TinyNet):
        def forward(self, x):
            return super().forward(x), x

    with pytest.raises(ModelOutputError, match="returns tuple"):
        registered("tiny/pair", Pair(), canvas=32, num_classes=10)
    assert "tiny/dense" not in external._ENTRIES  # nothing was registered


def test_register_module_replaces_its_own_names_only(registered):
    first = TinyNet(10)
    registered("tiny/dense", first, canvas=32, num_classes=10)
    second = TinyNet(10)
    registered("tiny/dense", second, canvas=32, num_classes=10)
    assert create_model("tiny/dense").module is second and not second.training
    assert check_model("tiny/dense").provenance["output_checked"] == "[2, 3, 32, 32] -> [2, 10]"
    with pytest.raises(SpecError, match="registry model"):
        registered("resnet50/dense", TinyNet(1000), canvas=32)
    with pytest.raises(SpecError, match="<arch>/<tag>"):
        registered("tiny", TinyNet(10), canvas=32, num_classes=10)


def test_registered_module_runs_end_to_end_on_an_image_folder(registered, tmp_path, isolated_home):
    root = tmp_path / "shapes"
    for cls, colour in (("red", (200, 0, 0)), ("green", (0, 200, 0)), ("blue", (0, 0, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), colour).save(root / cls / f"{i}.png")
    net = TinyNet(10)
    with torch.no_grad():
        net.conv.weight[:4] = 0
    registered("tiny/pruned", net, canvas=32, num_classes=10, compression="unstructured")
    spec = RunSpec("tiny/pruned", f"folder:{root}?size=16&test_fraction=0.34", n_shots=1, epochs=1, eval_every=1)
    store = ResultStore(tmp_path / "runs")
    record = run(spec, store, device="cpu", progress=False)
    assert record["classes"] == ["blue", "green", "red"] and record["data"]["n_train"] == 3
    assert record["data"]["input_size"] == 16 and record["data"]["canvas"] == 32
    assert record["model"]["source"] == "register_module" and record["model"]["compression_stated"] == "unstructured"
    assert record["model"]["zeros"] == 4 * 27 and 0.0 <= record["metrics"]["acc"] <= 100.0
    assert store.has(spec) and (paths.tensors_dir()).is_dir()


def test_timm_arch_takes_canvas_and_normalisation_from_the_registered_cfg_without_building(monkeypatch):
    """``arch=timm:NAME`` reads timm's registered pretrained_cfg (what create_model attaches) instead of building
    the network once just to read it; the values match the built model's."""
    import timm

    from vpcost_utils.models.external import resolve_arch

    built = timm.create_model("vit_base_patch16_384", pretrained=False).pretrained_cfg
    calls = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    arch = resolve_arch("timm:vit_base_patch16_384")
    assert calls == []
    assert (arch.canvas, arch.mean, arch.std) == (built["input_size"][-1], tuple(built["mean"]), tuple(built["std"]))
    assert arch.canvas == 384 and arch.mean == (0.5, 0.5, 0.5)
