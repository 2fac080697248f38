"""The rehearsal: fake files in the published layouts, every notebook on them, records that cannot pass for results.

``test_ci_rehearsal_runs_every_notebook_on_fake_files`` is the CI-sized subset of ``make rehearse``
(the smallest family of each section: ResNet-18 GMP, DeiT-T W2A2; CIFAR-10, splice and AG News), run in its own
process as a user would, since the rehearsal points every cache at its own temporary home.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vpcost_utils import rehearsal_mode as rehearsal
from vpcost_utils.config import RunSpec
from vpcost_utils.rehearsal import thinning as plan
from vpcost_utils.running import runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value, on", [("1", True), ("yes", True), ("0", False), ("", False), ("false", False)])
def test_rehearsal_mode_is_read_from_the_environment(monkeypatch, value, on):
    monkeypatch.setenv(rehearsal.ENV, value)
    assert rehearsal.active() is on


def test_records_made_in_a_rehearsal_say_so(monkeypatch):
    monkeypatch.setattr("vpcost_utils.vp.train_vp.run_vp",
                        lambda spec, device, progress, **_: {"metrics": {"acc": 1.0}})
    spec = RunSpec("smallcnn/dense", "digits", epochs=1)
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    assert "rehearsal" not in runs.execute(spec, device="cpu")
    monkeypatch.setenv(rehearsal.ENV, "1")
    assert runs.execute(spec, device="cpu")["rehearsal"] is True


def test_dataset_checksums_are_only_relaxed_inside_a_rehearsal(monkeypatch):
    import torchvision.datasets.cifar as cifar

    original = cifar.check_integrity
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    with rehearsal.dataset_checksums_off():
        assert cifar.check_integrity is original
    monkeypatch.setenv(rehearsal.ENV, "1")
    with rehearsal.dataset_checksums_off():
        assert cifar.check_integrity("/nonexistent", "0" * 32) is True
    assert cifar.check_integrity is original


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_the_plans_give_every_notebook_parameters_it_declares(profile):
    from vpcost_utils.nb.reproduce import NOTEBOOK_DIR, check_parameters

    for name, params in plan.notebook_parameters(profile).items():
        check_parameters(NOTEBOOK_DIR / f"{name}.ipynb", {"profile": profile, "output_dir": "x", **params})


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_the_plans_load_every_model_and_dataset_of_the_profile(profile):
    """Checked before anything runs: a thinned plan that drops a model or dataset fails here, not after an hour."""
    from vpcost_utils.rehearsal.rehearse import _inputs

    models, datasets = _inputs(profile, plan.notebook_parameters(profile))
    need = plan.required(profile)
    assert need["models"] - set(models) == set() and need["datasets"] - set(datasets) == set()


def test_coverage_names_what_the_rehearsal_left_out():
    need = plan.required("quick")
    assert {"resnet50/acdc-90", "deit_tiny/w3a3", "clip_vit_l14_336/upop-2x"} <= need["models"]
    assert {"cifar10", "oxford_pets", "ag_news", "splice"} <= need["datasets"]
    records = [{"spec": {"model": m, "dataset": "cifar10", "task": "vp", "method": "ilm"}} for m in need["models"]]
    left = plan.uncovered("quick", records)
    assert left["models"] == [] and "oxford_pets" in left["datasets"] and "vp:flm" in left["methods"]


def test_ci_rehearsal_runs_every_notebook_on_fake_files(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vpcost_utils.rehearsal.rehearse", "--ci", "--profile",
                             plan.CI_PROFILE,
                             "--output-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = tmp_path / plan.CI_PROFILE
    assert (out / "index.md").read_text().splitlines()[0] == rehearsal.INDEX_BANNER
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert records and all(r["rehearsal"] is True for r in records)
    models = {r["spec"]["model"] for r in records}
    assert {"resnet18/dense", "resnet18/gmp", "deit_tiny/fp32", "deit_tiny/w2a2"} <= models
    assert {r["spec"]["task"] for r in records} == {"vp", "crossmodal"}
    assert {r["spec"]["dataset"] for r in records if r["spec"]["task"] == "crossmodal"} == {"splice", "ag_news"}
    assert "SparseML ResNet" in result.stdout and "train step" in result.stdout
    assert {p.stem for p in (out / "executed").glob("*.ipynb")} == set(plan.CI_PLAN)


def test_papermill_sees_every_declared_parameter():
    """Regression (found by the rehearsal): papermill cannot parse a parameter line whose comment holds ``=``
    (or an unbalanced quote) and leaves the name out, so ``reproduce.execute`` refused ``-p shots`` for 08 and
    ``-p class_names`` for 02."""
    import nbformat

    from vpcost_utils.nb.artifacts import NOTEBOOKS
    from vpcost_utils.nb.notebook import _assigned_names
    from vpcost_utils.nb.reproduce import NOTEBOOK_DIR, declared_parameters

    for name in NOTEBOOKS:
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        cell = next(c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", []))
        assert _assigned_names(cell.source) <= set(declared_parameters(path)), name


def test_figures_saved_in_a_rehearsal_are_stamped(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from vpcost_utils.nb.notebook import Section

    section = Section("clip", {"profile": "quick"}, tmp_path, store=None)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    section.save_figure(fig, "plain")
    assert not any("REHEARSAL" in t.get_text() for t in fig.texts)
    monkeypatch.setenv(rehearsal.ENV, "1")
    section.save_figure(fig, "stamped")
    assert any("REHEARSAL" in t.get_text() for t in fig.texts)
    assert (tmp_path / "figures" / "stamped.png").exists()


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VPCOST_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(rehearsal.ENV, "1")
    return tmp_path


def test_every_fake_image_dataset_loads_with_every_class_in_both_splits(fake_home):
    from vpcost_utils.data import get_dataset_info, load_split
    from vpcost_utils.data.vision_fakes import WRITERS
    from vpcost_utils.rehearsal import fakes

    for name in WRITERS:
        fakes.write_dataset(name)
        info = get_dataset_info(name)
        for split in ("train", "test"):
            data = load_split(name, split)
            assert len(data.classes) == info.num_classes, name
            assert data.labels.bincount(minlength=info.num_classes).min() >= 1, (name, split)


@pytest.mark.parametrize("name", ["resnet50/acdc-98", "resnet50/lt-79.122", "swin_tiny/w4a4"])
def test_fake_checkpoints_pass_the_loaders_checks(fake_home, name):
    from vpcost_utils.models import create_model
    from vpcost_utils.rehearsal import fakes

    fakes.write_checkpoint(name)
    model = create_model(name)  # strict load plus the sparsity / bit-width check of the entry
    assert model.provenance["substitute"] is False


@pytest.mark.parametrize("profile", ["smoke", "mini", "quick", "paper"])
def test_a_profile_without_a_family_does_not_promise_its_figures(profile):
    """Regression (found by the quick rehearsal): quick has no GMP, RigL or lottery-ticket family, yet its
    index listed Figs. 2, 4 and 15-17 as missing and ``make reproduce PROFILE=quick`` exited 3."""
    from vpcost_utils import profiles
    from vpcost_utils.nb.artifacts import made_by

    family_figures = {"Fig. 2, 21": ("gmp-r18", "gmp-r34"), "Fig. 4, 23": ("rigl",), "Fig. 15, 16 (left)": ("lt",),
                      "Fig. 15, 16 (right)": ("lt",), "Fig. 17": ("lt",)}
    families = profiles.SPARSE_FAMILIES[profile]
    promised = {a.paper for a in made_by(profile)}
    for paper, needs in family_figures.items():
        if paper in promised and profile != "mini":  # mini draws its own family as Fig. 2's panel
            assert any(f in families for f in needs), (profile, paper)


@pytest.mark.parametrize("profile", ["smoke", "mini", "quick", "paper"])
def test_every_clip_model_of_a_profile_has_a_table2_column(profile):
    """Regression (found by the quick rehearsal): quick's dense CLIP (OpenAI's) had no Table 2 column, so its
    table had no dense row and no drop."""
    from vpcost_utils import profiles
    from vpcost_utils.nb import tables

    cfg = profiles.settings("clip", profile)
    columns = cfg["paper_models"] or tables.TABLE2_MODELS
    assert "dense" in {columns.get(m) for m in cfg["models"]}, profile


def test_every_registry_entry_that_reads_a_published_file_names_a_writer_beside_its_loader():
    import importlib

    from vpcost_utils.data import get_dataset_info
    from vpcost_utils.data.text import TEXT_DATASETS
    from vpcost_utils.models import get_entry, list_models

    published = ("resnet", "deit_tiny/", "swin_tiny/", "clip_vit_l14_336/")  # the quick and paper profiles' files
    names = [n for n in list_models() if n.startswith(published)]
    assert len(names) > 20
    for name in names:
        entry = get_entry(name)
        assert entry.fake, name
        module, _, function = entry.fake.partition(":")
        loader = getattr(entry.loader, "func", entry.loader)  # partials too
        assert module.rsplit(".", 1)[0] == loader.__module__.rsplit(".", 1)[0], (name, module)  # beside it
        assert callable(getattr(importlib.import_module(module), function)), name
    assert all(get_entry(n).fake is None for n in list_models() if n.startswith(("smallcnn/", "tinyclip/")))
    for name, info in TEXT_DATASETS.items():
        assert (info.fake is not None) == (not info.offline), name
    assert get_dataset_info("cifar10").fake == "vpcost_utils.data.vision_fakes:write_fake"
