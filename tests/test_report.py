"""The hidden-cost report: temperature scaling, held-out images, paired intervals, and the command end to end."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from vpcost_utils import metrics, report
from vpcost_utils.config import RunSpec
from vpcost_utils.data.shots import hold_out
from vpcost_utils.errors import ModelOutputError, SpecError
from vpcost_utils.vp.temperature import fit_temperature
from vpcost_utils.vp.train_vp import load_data_with_holdout

# --- temperature scaling ------------------------------------------------------------------------------------------

def _calibrated_logits(n: int = 4000, k: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, k, generator=g)
    labels = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)
    return logits, labels


def test_temperature_recovers_a_known_overconfidence_and_lowers_ece():
    logits, labels = _calibrated_logits()
    overconfident = 4.0 * logits  # the same predictions, four times too sharp
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(4.0, rel=0.1)
    before = metrics.ece(overconfident.softmax(1), labels)
    after = metrics.ece((overconfident / t).softmax(1), labels)
    assert before > 0.15 and after < 0.03 and after < before / 5


def test_temperature_of_calibrated_logits_is_about_one():
    logits, labels = _calibrated_logits(seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)


# --- held-out images ------------------------------------------------------------------------------------------------

def test_hold_out_is_per_class_seeded_and_disjoint():
    labels = torch.arange(4).repeat_interleave(30)
    held, rest = hold_out(labels, 5, seed=3)
    assert torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert set(held.tolist()).isdisjoint(rest.tolist()) and len(held) + len(rest) == 120
    assert torch.equal(held, hold_out(labels, 5, seed=3)[0]) and not torch.equal(held, hold_out(labels, 5, seed=4)[0])
    with pytest.raises(ValueError, match="cannot hold out 30"):
        hold_out(labels, 30, seed=0)


def test_run_with_holdout_trains_on_no_held_out_image():
    spec = RunSpec("smallcnn/dense", "digits", n_shots=5, seed=1, holdout=8)
    train, test, held = load_data_with_holdout(spec)
    assert len(held) == 8 * held.num_classes and len(train) == 5 * train.num_classes
    as_rows = lambda split: {bytes(img.numpy().tobytes()) for img in split.images}  # noqa: E731
    assert as_rows(train).isdisjoint(as_rows(held))
    # the same spec for another model holds out and trains on the very same images (pairing)
    train2, _, held2 = load_data_with_holdout(spec.replace(model="smallcnn/prune-90"))
    assert torch.equal(train.images, train2.images) and torch.equal(held.images, held2.images)
    assert spec.replace(holdout=None).run_id != spec.run_id


# --- paired intervals on a hand-made case ---------------------------------------------------------------------

def _runs(dense: list[float], compressed: list[float], metric: str = "acc") -> pd.DataFrame:
    rows = []
    for model, values in (("a/dense", dense), ("a/small", compressed)):
        for seed, v in enumerate(values):
            rows.append({"run_id": f"{model}{seed}", "model": model, "dataset": "d", "method": "ilm", "n_shots": 10,
                         "shots": "10", "seed": seed, metric: v})
    return pd.DataFrame(rows)


def test_paired_gap_is_the_t_interval_of_the_per_seed_differences():
    config = report.ReportConfig("a/dense", ("a/small",), ("d",), shots=(10,), seeds=(0, 1, 2))
    gaps = report.gap_table(_runs([50.0, 60.0, 70.0], [45.0, 52.0, 66.0]), config, "acc")
    diffs = np.array([5.0, 8.0, 4.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    row = gaps.iloc[0]
    assert row["gap"] == pytest.approx(diffs.mean())
    assert (row["gap_low"], row["gap_high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert bool(row["beyond_noise"])  # the accuracies' own intervals overlap; the paired one excludes 0
    acc = report.accuracy_table(_runs([50.0, 60.0, 70.0], [45.0, 52.0, 66.0]), config)
    dense = acc[acc["model"] == "a/dense"].iloc[0]
    assert dense["low"] < 54.33 < dense["high"]
    ece = report.gap_table(_runs([0.1, 0.2, 0.3], [0.2, 0.3, 0.5], "ece"), config, "ece", compressed_minus_dense=True)
    assert ece.iloc[0]["gap"] == pytest.approx(0.1333333) and ece.iloc[0]["gap_low"] < ece.iloc[0]["gap_high"]


def test_verdict_names_a_cost_only_beyond_seed_noise():
    config = report.ReportConfig("a/dense", ("a/small",), ("d",), shots=(10,), seeds=(0, 1, 2))
    clear = report.gap_table(_runs([50.0, 60.0, 70.0], [45.0, 52.0, 66.0]), config, "acc")
    noisy = report.gap_table(_runs([50.0, 60.0, 70.0], [55.0, 52.0, 72.0]), config, "acc")
    no_ece = clear.iloc[:0]
    assert "pays an accuracy cost" in report.verdicts(clear, no_ece, no_ece)[0]
    assert "no accuracy gap beyond noise" in report.verdicts(noisy, no_ece, no_ece)[0]
    assert "no gap larger than +-17.2 points" in report.verdicts(noisy, no_ece, no_ece)[0]


def test_shots_parse_and_bad_budgets_are_named():
    assert report.parse_shots(["1", "10", "full"]) == (1, 10, None)
    with pytest.raises(SpecError, match="'ten'"):
        report.parse_shots(["ten"])


# --- checks before training -------------------------------------------------------------------------------------

def test_a_dataset_too_small_for_n_plus_holdout_fails_before_training():
    with pytest.raises(SpecError, match=r"fewer than 40 training images.*--holdout"):
        report.check_dataset("digits", (1, 20), holdout=20)


def test_a_model_whose_output_is_not_logits_is_refused(monkeypatch):
    from vpcost_utils import models
    from vpcost_utils.models import _registry

    real = _registry.create_model

    def not_a_classifier(name, **kw):
        model = real("smallcnn/dense", **kw)
        model.module = torch.nn.Sequential(model.module, torch.nn.Unflatten(1, (10, 10)))
        return model

    monkeypatch.setattr(models, "create_model", not_a_classifier)
    with pytest.raises(ModelOutputError, match=r"output shape \(2, 10, 10\) .* must give \(2, 100\)"):
        report.check_model("smallcnn/dense")


# --- end to end ---------------------------------------------------------------------------------------------------

def test_report_command_end_to_end_on_the_smoke_models(tmp_path):
    argv = ["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits", "--shots", "2",
            "--seeds", "2", "--epochs", "1", "--holdout", "5", "--max-test", "100", "--name", "r",
            "--methods", "ilm", "--output-dir", str(tmp_path)]
    assert report.main(argv) == 0
    folder = tmp_path / "r"
    for name in ("report.md", "report.html", "runs.csv", "summary.json", "figures/accuracy.png",
                 "figures/reliability.png"):
        assert (folder / name).stat().st_size > 100, name
    summary = json.loads((folder / "summary.json").read_text())
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert len(records) == 4 and all(r["data"]["n_holdout"] == 5 * 10 for r in records)
    for model in ("smallcnn/dense", "smallcnn/prune-90"):
        accs = [r["metrics"]["acc"] for r in records if r["spec"]["model"] == model]
        row = next(a for a in summary["accuracy"] if a["model"] == model)
        assert row["mean"] == pytest.approx(np.mean(accs)) and row["seeds"] == 2
    by_seed = {(r["spec"]["model"], r["spec"]["seed"]): r["metrics"] for r in records}
    gap = summary["accuracy_gaps"][0]
    assert gap["gap"] == pytest.approx(np.mean([by_seed["smallcnn/dense", s]["acc"] - by_seed["smallcnn/prune-90", s]
                                                ["acc"] for s in (0, 1)]))
    cal = next(c for c in summary["calibration"] if c["model"] == "smallcnn/dense")
    assert cal["ece_temp_scaled"] == pytest.approx(np.mean([by_seed["smallcnn/dense", s]["ece_temp_scaled"]
                                                            for s in (0, 1)]))
    html_text = (folder / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") == 4 and 'src="figures' not in html_text
    assert "smallcnn/prune-90 on digits" in (folder / "report.md").read_text()
    # a rerun trains nothing: every record is already in the store
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    assert report.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == mtimes


def test_report_command_reports_bad_input_without_a_traceback(tmp_path, capsys):
    code = report.main(["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits",
                        "--shots", "30", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    # the shared preflight's word: 20 held out per class leaves nothing to train on in digits' smallest class
    assert "too few to hold out 20 per class" in err and "lower holdout" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_report_on_an_image_folder_the_test_writes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 9), ("test", 6)):
        for cls, colour in {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items():
            (tmp_path / "leaves" / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.normal(0, 40, (24, 30, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "leaves" / split / cls / f"{i}.png")
    dataset = f"folder:{tmp_path / 'leaves'}?size=32"
    out = tmp_path / "out"
    argv = ["--dense", "smallcnn/dense", "--compressed", "smallcnn/w3a3", "--datasets", dataset, "--shots", "2", "5",
            "--seeds", "2", "--epochs", "2", "--holdout", "3", "--name", "leaves", "--methods", "ilm",
            "--output-dir", str(out)]
    assert report.main(argv) == 0
    summary = json.loads((out / "leaves" / "summary.json").read_text())
    assert summary["datasets"][dataset]["classes"] == 3 and summary["datasets"][dataset]["test_images"] == 18
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert len(records) == 8 and {r["data"]["n_holdout"] for r in records} == {9}
    assert {r["data"]["n_train"] for r in records} == {6, 15} and {r["data"]["n_test"] for r in records} == {18}
    assert {(g["shots"], g["pairs"]) for g in summary["accuracy_gaps"]} == {("2", 2), ("5", 2)}
    # a folder with too few images for N + holdout is refused before anything trains
    assert argv[8] == "5" and report.main([*argv[:8], "7", *argv[9:]]) == 2


def test_report_panel_redraws_each_compressed_model_against_the_dense_one():
    from vpcost_utils.nb import explore

    config = report.ReportConfig("a/dense", ("a/small",), ("d",), shots=(10,), seeds=(0, 1, 2))
    runs = _runs([50.0, 60.0, 70.0], [45.0, 52.0, 66.0]).assign(ece=0.1, ece_temp_scaled=0.05)
    panel = explore.report_panel(report.Report(config, runs, {}, {}), show=False)
    assert panel.controls == {"dataset": ["d"], "compressed": ["a/small"], "metric": ["acc", "ece", "ece_temp_scaled"]}
    fig = panel.redraw(dataset="d", compressed="a/small", metric="acc")
    means = sorted(line.get_ydata()[0] for line in fig.axes[0].get_lines())
    assert means == pytest.approx([54.333333, 60.0])


# --- fixed-width studies (Stein's two stages) ---------------------------------------------------------------------

_STUDY = ["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits", "--shots", "2",
          "--epochs", "1", "--holdout", "5", "--max-test", "100", "--name", "s", "--methods", "ilm"]


@pytest.mark.parametrize("flags, message", [
    (["--target-halfwidth", "-1"], "positive number"),
    (["--target-halfwidth", "nan"], "positive number"),
    (["--target-halfwidth", "3", "--max-seeds", "4", "--pilot-seeds", "5"], "smaller than the pilot"),
    (["--target-halfwidth", "3", "--pilot-seeds", "2"], "at least 3 seeds"),
    (["--max-seeds", "9"], "only applies with --target-halfwidth"),
])
def test_fixed_width_bad_input_is_refused_before_any_training(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        report.main([*_STUDY, "--output-dir", str(tmp_path), *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_fixed_width_study_refuses_an_unreachable_target_then_resumes_from_the_pilot(tmp_path, capsys, monkeypatch):
    from vpcost_utils.running import sweep

    argv = [*_STUDY, "--output-dir", str(tmp_path), "--pilot-seeds", "3", "--max-seeds", "4"]
    assert report.main([*argv, "--target-halfwidth", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "out of the seed budget" in err and ("needs" in err or "test set's own error" in err)
    pilot = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert len(pilot) == 6  # 3 pilot seeds x 2 models, kept

    trained = []
    real = sweep._run_and_clear
    monkeypatch.setattr(sweep, "_run_and_clear", lambda spec, *a, **k: (trained.append(spec), real(spec, *a, **k))[1])
    # A wide target: the pilot suffices, nothing is trained again, and the summary names the rule
    assert report.main([*argv, "--target-halfwidth", "1000"]) == 0
    assert trained == []
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["interval_rule"].startswith("Stein two-stage, pilot n0=3")
    assert {(p["model"], p["method"], p["seeds"]) for p in summary["seed_plan"]} == {("smallcnn/dense", "ilm", 3),
                                                                                        ("smallcnn/prune-90", "ilm", 3)}
    gap = summary["accuracy_gaps"][0]
    assert gap["rule"] == "t" and gap["pairs"] == 3 and gap["test_noise"] == "counted"  # n == n0: plain t


def test_seed_plan_runs_each_cell_as_many_seeds_as_stein_says():
    from vpcost_utils.stats import sequential

    rows = []
    for seed in range(5):
        rows += [{"run_id": f"d{seed}", "model": "a/dense", "dataset": "x", "shots": "10", "seed": seed,
                  "acc": 50.0 + seed},
                 {"run_id": f"s{seed}", "model": "a/s", "dataset": "x", "shots": "10", "seed": seed,
                  "acc": 50.0 - seed},  # gaps 0, 2, 4, 6, 8: sd 3.16
                 {"run_id": f"q{seed}", "model": "a/q", "dataset": "x", "shots": "10", "seed": seed,
                  "acc": 50.0 + seed + 0.1 * (seed % 2)}]  # gaps 0, -0.1, 0, -0.1, 0: tiny sd
    target = sequential.Target(halfwidth=2.0, max_seeds=40, pilot=5)
    needed = sequential.seeds_needed(pd.DataFrame(rows), {}, "a/dense", ["a/s", "a/q"], target)
    by_model = dict(zip(needed["model"], needed["needed"], strict=True))
    t = stats.t.ppf(0.975, 4)
    assert by_model["a/s"] == math.ceil(10.0 * t ** 2 / 4) and by_model["a/q"] == 5
    plan = sequential.seed_plan(needed, "a/dense")
    assert plan[("a/dense", "x", "10")] == by_model["a/s"]
    with pytest.raises(SpecError, match=r"a/s on x N=10: needs 20 seeds"):
        sequential.check_budget(needed, sequential.Target(halfwidth=2.0, max_seeds=19, pilot=5))


def test_a_canvas_smaller_than_the_images_is_refused_before_training(tmp_path, capsys):
    # digits decode at 32 px; a 24-px canvas cannot hold them (before: every run failed, then a report of failures)
    code = report.main(["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits",
                        "--shots", "2", "--holdout", "5", "--canvas", "24", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "digits images are 32 px, larger than smallcnn/dense's 24-px canvas" in err
    assert "smallcnn/prune-90's 24-px canvas" in err and "raise canvas" in err
    assert not list((tmp_path / "runs").glob("*.json"))


def test_ece_gap_tables_state_their_verdict_in_points():
    from vpcost_utils.report.analysis import _in_points

    config = report.ReportConfig("a/dense", ("a/small",), ("d",), shots=(10,), seeds=(0, 1, 2))
    ece = report.gap_table(_runs([0.10, 0.20, 0.30], [0.12, 0.19, 0.33], "ece"), config, "ece",
                           compressed_minus_dense=True)
    assert ece.iloc[0]["verdict"].startswith("within +-0.")  # fractions
    points = _in_points(ece).iloc[0]
    bound = max(abs(points["gap_low"]), abs(points["gap_high"]))
    assert points["verdict"] == f"within +-{bound:.3g}" and bound > 1


# --- methods: LP beside VP (issue 33 item 7) ----------------------------------------------------------------------

def test_methods_parse_default_and_refuse_an_unknown_name_listing_the_known_ones(tmp_path, capsys):
    from vpcost_utils.errors import UnknownNameError

    assert report.parse_methods(["lp", "ILM", "lp"]) == ("lp", "ilm")
    assert report.ReportConfig("a/dense", ("a/small",), ("d",)).methods == ("ilm", "lp") == report.DEFAULT_METHODS
    known = r"Known report methods: blm, blm\+, flm, fullymap, ilm, lp, rlm"
    with pytest.raises(UnknownNameError, match=rf"unknown report method 'xp'.*{known}"):
        report.ReportConfig("a/dense", ("a/small",), ("d",), methods=("ilm", "xp"))
    with pytest.raises(SpecError, match="at least one method"):
        report.parse_methods([])
    with pytest.raises(SystemExit) as exit_info:  # refused before any work: no store, no run
        report.main(["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits",
                     "--methods", "ilm", "linear", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown report method 'linear'" in err
    assert "blm, blm+, flm, fullymap, ilm, lp, rlm" in err
    assert not (tmp_path / "runs").exists()


def test_help_shows_methods_with_lp(capsys):
    with pytest.raises(SystemExit):
        report.main(["--help"])
    out = capsys.readouterr().out
    assert "--methods" in out and "rlm flm ilm blm blm+ fullymap lp" in out and "default: ilm lp" in out


def test_the_methods_beyond_the_paper_are_report_methods_with_their_labels():
    assert report.parse_methods(["BLM", "blm+", "fullymap", "lp"]) == ("blm", "blm+", "fullymap", "lp")
    config = report.ReportConfig("a/dense", ("a/small",), ("digits",), methods=("blm", "blm+", "fullymap"),
                                 shots=(2,), seeds=(0,))
    assert sorted(s.method for s in config.specs()) == ["blm", "blm", "blm+", "blm+", "fullymap", "fullymap"]
    assert all(s.task == "vp" and s.prompt is None for s in config.specs())
    assert [report.METHOD_LABELS[m] for m in config.methods] == ["BLM-VP", "BLM+-VP", "FullyMap-VP"]


def test_specs_run_every_method_and_a_seed_plan_per_method():
    config = report.ReportConfig("a/dense", ("a/small",), ("digits",), methods=("rlm", "lp"), shots=(2, None),
                                 seeds=(0, 1))
    specs = config.specs()
    assert len(specs) == 2 * 2 * 2 * 2 and {s.method for s in specs} == {"rlm", "lp"}
    assert all(s.task == "vp" for s in specs)
    plan = {("a/dense", "digits", "2", "lp"): 3, ("a/small", "digits", "2", "lp"): 3,
            ("a/dense", "digits", "2", "rlm"): 1}
    by = sorted((s.model, s.method, s.n_shots, s.seed) for s in config.specs(plan))
    assert by == [("a/dense", "lp", 2, 0), ("a/dense", "lp", 2, 1), ("a/dense", "lp", 2, 2), ("a/dense", "rlm", 2, 0),
                  ("a/small", "lp", 2, 0), ("a/small", "lp", 2, 1), ("a/small", "lp", 2, 2)]


def test_notebook_settings_give_the_reports_methods():
    from vpcost_utils import profiles

    assert report.ReportConfig.from_settings(profiles.settings("your_model", "smoke")).methods == ("ilm", "lp")
    s = profiles.settings("your_model", "mini", methods=["flm"])
    assert report.ReportConfig.from_settings(s).methods == ("flm",)


def test_stein_plan_is_per_method_and_a_refusal_names_the_method():
    rows = []
    for method, spread in (("ilm", 2.0), ("lp", 0.05)):
        for seed in range(5):
            rows += [{"run_id": f"{method}d{seed}", "model": "a/dense", "dataset": "x", "method": method,
                      "shots": "10", "seed": seed, "acc": 50.0 + seed},
                     {"run_id": f"{method}s{seed}", "model": "a/s", "dataset": "x", "method": method,
                      "shots": "10", "seed": seed, "acc": 50.0 + seed - spread * seed}]
    config = report.ReportConfig("a/dense", ("a/s",), ("x",), shots=(10,), target_halfwidth=2.0, max_seeds=40)
    plan = report.stein_plan(config, pd.DataFrame(rows), {})
    assert plan[("a/s", "x", "10", "lp")] == 5 < plan[("a/s", "x", "10", "ilm")]  # VP's noisy pilot needs more
    assert plan[("a/dense", "x", "10", "ilm")] == plan[("a/s", "x", "10", "ilm")]
    tight = report.ReportConfig("a/dense", ("a/s",), ("x",), shots=(10,), target_halfwidth=0.5, max_seeds=10)
    with pytest.raises(SpecError, match=r"a/s \(ILM-VP\) on x N=10: needs \d+ seeds"):
        report.stein_plan(tight, pd.DataFrame(rows), {})


def _gap_row(method: str, gap: float, half: float, pairs: int = 4, shots: str = "10") -> dict:
    low, high = gap - half, gap + half
    return {"model": "a/small", "dataset": "fmnist", "method": method, "shots": shots, "pairs": pairs, "gap": gap,
            "gap_low": low, "gap_high": high, "halfwidth": half, "mde": 1.2 * half,
            "verdict": "above 0" if low > 0 else "below 0" if high < 0 else f"within +-{max(abs(low), high):.3g}",
            "beyond_noise": low > 0 or high < 0}


def test_the_verdict_says_when_vps_interval_is_too_wide_to_see_the_gap_lp_sees():
    gaps = pd.DataFrame([_gap_row("ilm", 1.0, 6.5), _gap_row("lp", 2.1, 1.3),           # too wide
                         _gap_row("ilm", -0.2, 0.9, shots="50"), _gap_row("lp", 2.0, 1.0, shots="50"),  # disagree
                         _gap_row("ilm", 0.5, 1.0, shots="1"), _gap_row("lp", 0.3, 1.0, shots="1")])    # LP sees none
    sentences = report.vp_too_wide(gaps)
    assert sentences[0] == ("At N=10 on fmnist, LP sees a cost of +2.1 points [+0.8, +3.4] (4 seeds) for a/small; "
                            "ILM-VP's interval (+-6.5: +1.0 [-5.5, +7.5], 4 seeds) is too wide to see a gap of that "
                            "size.")
    assert "excludes a gap of that size: the two methods disagree" in sentences[1] and "N=50" in sentences[1]
    assert len(sentences) == 2  # at N=1 LP sees nothing; a VP cell beyond noise is never called too wide
    no_ece = pd.DataFrame(columns=list(gaps.columns))
    texts = report.verdicts(gaps, no_ece, no_ece)
    assert any(t.startswith("**a/small on fmnist (ILM-VP): no accuracy gap beyond noise**") for t in texts)
    assert any(t.startswith("**a/small on fmnist (LP) pays an accuracy cost** beyond noise") for t in texts)
    assert texts[-1].startswith("**a/small on fmnist, VP beside LP**: At N=10") and "too wide" in texts[-1]
    assert report.vp_too_wide(gaps[gaps["method"] == "ilm"]) == []  # no LP, nothing to say


def test_report_runs_lp_beside_vp_end_to_end_on_the_smoke_models(tmp_path):
    argv = ["--dense", "smallcnn/dense", "--compressed", "smallcnn/prune-90", "--datasets", "digits", "--shots", "2",
            "--seeds", "2", "--epochs", "1", "--holdout", "5", "--max-test", "100", "--methods", "ilm", "lp",
            "--name", "m", "--output-dir", str(tmp_path)]
    assert report.main(argv) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert sorted((r["spec"]["method"], r["spec"]["model"]) for r in records) == sorted(
        (m, x) for m in ("ilm", "lp") for x in ("smallcnn/dense", "smallcnn/prune-90") for _ in range(2))
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    for key in ("accuracy_gaps", "ece_gaps", "ece_temp_scaled_gaps"):
        assert sorted(g["method"] for g in summary[key]) == ["ilm", "lp"], key
    lp = [r for r in records if r["spec"]["method"] == "lp"]
    by_seed = {(r["spec"]["model"], r["spec"]["seed"]): r["metrics"]["acc"] for r in lp}
    gap = next(g for g in summary["accuracy_gaps"] if g["method"] == "lp")
    assert gap["gap"] == pytest.approx(np.mean([by_seed["smallcnn/dense", s] - by_seed["smallcnn/prune-90", s]
                                                for s in (0, 1)]))
    assert {(a["method"], a["model"]) for a in summary["accuracy"]} == {
        (m, x) for m in ("ilm", "lp") for x in ("smallcnn/dense", "smallcnn/prune-90")}
    assert {c["method"] for c in summary["calibration"]} == {"ilm", "lp"}
    text = (tmp_path / "m" / "report.md").read_text()
    assert "smallcnn/prune-90 on digits (ILM-VP)" in text and "smallcnn/prune-90 on digits (LP)" in text
    assert "| ILM-VP |" in text and "| LP |" in text and "methods ILM-VP, LP" in text


def test_lp_on_a_model_without_a_linear_head_is_refused_by_name_before_training(monkeypatch):
    from vpcost_utils import models
    from vpcost_utils.models import _registry

    real = _registry.create_model

    class NotLinear(torch.nn.Module):  # the same map as the head, but no nn.Linear for LP to read
        def __init__(self, linear):
            super().__init__()
            self.weight, self.bias = linear.weight, linear.bias

        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight, self.bias)

    def headless(name, **kw):
        model = real("smallcnn/dense", **kw)
        parent_name, linear = [(n, m) for n, m in model.module.named_modules() if isinstance(m, torch.nn.Linear)][-1]
        parent = model.module.get_submodule(parent_name.rpartition(".")[0]) if "." in parent_name else model.module
        setattr(parent, parent_name.rpartition(".")[2], NotLinear(linear))
        return model

    monkeypatch.setattr(models, "create_model", headless)
    assert report.check_model("x/headless")["num_classes"] == 100  # VP needs only logits
    with pytest.raises(SpecError, match=r"x/headless: method 'lp' needs .* leave lp out of --methods"):
        report.check_model("x/headless", probe=True)
