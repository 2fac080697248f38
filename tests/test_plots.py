"""The figure functions compute the right numbers and draw the expected panels, on hand-built results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from vpcost_utils import plots
from vpcost_utils.data import ImageSplit
from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.plots._common import _ordered_shots

DENSE, MID, SPARSE = "resnet50/dense", "resnet50/lt-49.35", "resnet50/lt-11.571"


def row(model, dataset, method, n_shots, seed, acc, **extra):
    return {"run_id": f"{model}-{dataset}-{method}-{n_shots}-{seed}", "model": model, "dataset": dataset,
            "method": method, "task": "vp", "n_shots": n_shots, "seed": seed, "acc": acc, **extra}


def acc_of(model, dataset, method, shot, seed):
    """A made-up but structured accuracy: dense > mid > sparse, ILM > FLM, grows with the budget."""
    base = {DENSE: 80.0, MID: 74.0, SPARSE: 65.0}[model] + (3.0 if method == "ilm" else 0.0)
    budget = {1: 0.0, 10: 5.0, None: 10.0}[shot]
    return base + budget + (2.0 if dataset == "digits" else 0.0) + seed * (1.0 if model == DENSE else 2.0)


@pytest.fixture
def table() -> pd.DataFrame:
    rows = [row(m, d, me, n, s, acc_of(m, d, me, n, s))
            for m in (DENSE, MID, SPARSE) for d in ("synth_shapes", "digits") for me in ("ilm", "flm")
            for n in (1, 10, None) for s in (0, 1, 2)]
    return pd.DataFrame(rows)  # n_shots becomes float with NaN for full data, as ResultStore.table() gives


# --- names and levels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, sparsity, remaining, bits", [
    ("resnet50/lt-11.571", "lt", 88.429, 11.571, 32),
    ("resnet50/acdc-90", "acdc", 90.0, 10.0, 32),
    ("smallcnn/prune-95", "prune", 95.0, 5.0, 32),
    ("resnet50/rigl-80", "rigl", 80.0, 20.0, 32),
    ("deit_tiny/w3a3", "quant", 0.0, 100.0, 3),
    ("deit_tiny/fp32", "dense", 0.0, 100.0, 32),
    ("resnet50/dense", "dense", 0.0, 100.0, 32),
    ("clip_vit_l14_336/upop-4x", "upop", 75.0, 25.0, 32),
    ("resnet18/gmp", "gmp", None, None, 32),
    ("efficientnet_lite0/prune-50-recovered", "prune", 50.0, 50.0, 32),
    ("efficientnet_lite0/prune-50-reconstructed", "prune", 50.0, 50.0, 32),
    ("efficientnet_lite0/w4a8-recovered", "quant", 0.0, 100.0, 4),
    ("efficientnet_lite0/int8-tflite", "quant", 0.0, 100.0, 8),
])
def test_compression_level_parses_names(name, kind, sparsity, remaining, bits):
    level = plots.compression_level(name)
    assert level["kind"] == kind and level["bits"] == bits
    assert level["sparsity"] == (pytest.approx(sparsity) if sparsity is not None else None)
    assert level["remaining"] == (pytest.approx(remaining) if remaining is not None else None)


@pytest.mark.parametrize("profile", ["smoke", "mini", "quick", "paper"])
def test_every_model_a_profile_plots_has_a_level(profile):
    # the mini profile's calibration notebook failed on `prune-50-recovered` until the name rule knew it
    from vpcost_utils import profiles

    families = {**profiles.SPARSE_FAMILIES[profile], **profiles.QUANT_FAMILIES[profile]}
    for dense, compressed in families.values():
        assert plots.compression_level(dense)["kind"] == "dense"
        for name in compressed:
            level = plots.compression_level(name)
            assert level["kind"] != "dense" and (level["bits"] < 32 or level["sparsity"] != 0.0), name


def test_compression_level_rejects_unknown_tags():
    with pytest.raises(UnknownNameError, match="lt-<remaining %>"):
        plots.compression_level("resnet50/sparse-ish")


def test_compression_amount_orders_levels_within_a_family():
    lt = [f"resnet50/lt-{s}" for s in ("79.122", "11.571", "49.35")]
    assert max(lt, key=plots.compression_amount) == "resnet50/lt-11.571"
    quant = ["deit_tiny/w4a4", "deit_tiny/w2a2", "deit_tiny/w3a3"]
    assert max(quant, key=plots.compression_amount) == "deit_tiny/w2a2"


def test_shot_labels_follow_the_paper_order():
    assert plots.shot_label(None) == plots.shot_label(float("nan")) == "full"
    assert plots.shot_label(5.0) == "5"
    assert _ordered_shots(["full", "10", "2", "100", "1"]) == ["1", "2", "10", "100", "full"]
    assert plots.PAPER_SHOT_LABELS == ("1", "2", "5", "10", "20", "50", "100", "full")


# --- accuracy vs N-shot ----------------------------------------------------------------------------------------

def test_accuracy_vs_shots_panels_lines_and_means(table):
    fig = plots.accuracy_vs_shots(table, [DENSE, SPARSE], ["synth_shapes", "digits"], ["ilm", "flm"])
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["synth_shapes (generated)", "digits (sklearn)"]
    ax = fig.axes[1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "full"]
    assert len(ax.get_lines()) == 4
    assert len(ax.collections) == 4  # a seed band per line
    assert ax.get_ylabel() == "Test accuracy (%)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["Dense, ILM-VP", "Dense, FLM-VP", "LT S=11.571, ILM-VP", "LT S=11.571, FLM-VP"]
    sparse_ilm = ax.get_lines()[2]
    expected = [np.mean([acc_of(SPARSE, "digits", "ilm", n, s) for s in range(3)]) for n in (1, 10, None)]
    np.testing.assert_allclose(sparse_ilm.get_ydata(), expected)
    np.testing.assert_array_equal(sparse_ilm.get_xdata(), [0, 1, 2])


def test_accuracy_vs_shots_single_seed_draws_no_band_and_marks_empty_panels(table):
    one_seed = table[table["seed"] == 0]
    fig = plots.accuracy_vs_shots(one_seed, [DENSE], ["digits", "cifar10"], "ilm")
    assert len(fig.axes[0].get_lines()) == 1 and len(fig.axes[0].collections) == 0
    assert any(t.get_text() == "no runs" for t in fig.axes[1].texts)


def test_spread_std_band_matches_sample_std(table):
    fig = plots.accuracy_vs_shots(table, [SPARSE], ["digits"], "ilm", spread="std")
    band = fig.axes[0].collections[0].get_paths()[0].vertices
    seeds = [acc_of(SPARSE, "digits", "ilm", 1, s) for s in range(3)]
    top = np.mean(seeds) + np.std(seeds, ddof=1)
    assert np.isclose(band[:, 1].max(), np.mean([acc_of(SPARSE, "digits", "ilm", None, s) for s in range(3)])
                      + np.std(seeds, ddof=1))
    assert np.isclose(band[:, 1], top).any()


def test_default_band_is_the_95_percent_t_interval_of_the_seed_mean(table):
    from scipy import stats

    fig = plots.accuracy_vs_shots(table, [SPARSE], ["digits"], "ilm")
    band = fig.axes[0].collections[0].get_paths()[0].vertices
    seeds = [acc_of(SPARSE, "digits", "ilm", 1, s) for s in range(3)]
    half = stats.t.ppf(0.975, 2) * np.std(seeds, ddof=1) / np.sqrt(3)
    assert np.isclose(band[:, 1], np.mean(seeds) + half).any()
    assert np.isclose(band[:, 1], np.mean(seeds) - half).any()


# --- Delta heat maps -------------------------------------------------------------------------------------------

def test_delta_table_is_dense_minus_compressed_mean_over_seeds(table):
    delta = plots.delta_table(table, DENSE, [MID, SPARSE], "synth_shapes", "ilm", include_dense=True)
    assert list(delta.index) == ["1", "10", "full"]
    assert list(delta.columns) == [DENSE, MID, SPARSE]
    for shot_key, label in ((1, "1"), (10, "10"), (None, "full")):
        dense = np.mean([acc_of(DENSE, "synth_shapes", "ilm", shot_key, s) for s in range(3)])
        sparse = np.mean([acc_of(SPARSE, "synth_shapes", "ilm", shot_key, s) for s in range(3)])
        assert delta.loc[label, SPARSE] == pytest.approx(dense - sparse)
        assert delta.loc[label, DENSE] == 0
    # by construction: (80 + 1) - (65 + 2) = 14 points at every budget
    assert np.allclose(delta[SPARSE], 14.0)


def test_delta_table_leaves_missing_cells_empty(table):
    partial = table[~((table["model"] == MID) & (table["n_shots"] == 10))]
    delta = plots.delta_table(partial, DENSE, [MID], "digits", "flm")
    assert math.isnan(delta.loc["10", MID]) and not math.isnan(delta.loc["1", MID])


def test_delta_heatmap_annotates_cells_with_a_centred_scale(table):
    fig = plots.delta_heatmap(table, DENSE, [MID, SPARSE], ["synth_shapes", "digits"], "ilm")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and len(fig.axes) == 3  # + one shared colour bar
    image = panels[0].images[0]
    assert image.norm.vmin == -image.norm.vmax and image.norm.vmax == pytest.approx(14.0)
    texts = sorted({t.get_text() for t in panels[0].texts})
    assert texts == ["0.0", "14.0", "5.0"]  # dense column, 11.571, 49.35 ((80 + 1) - (74 + 2))
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["Dense", "49.35", "11.571"]


def test_transfer_gap_has_a_curve_and_two_maps_per_dataset(table):
    fig = plots.transfer_gap(table, DENSE, [MID, SPARSE], ["synth_shapes", "digits"], curve_methods=("ilm", "flm"))
    assert sum(1 for ax in fig.axes if ax.images) == 4
    curves = [ax for ax in fig.axes if ax.get_lines()]
    assert len(curves) == 2 and all(len(ax.get_lines()) == 4 for ax in curves)
    assert "LT S=11.571, ILM-VP" in [t.get_text() for t in fig.legends[0].get_texts()]


# --- statistics vs compression ---------------------------------------------------------------------------------

@pytest.fixture
def quant_table() -> pd.DataFrame:
    models = {"deit_tiny/fp32": 0.10, "deit_tiny/w4a4": 0.08, "deit_tiny/w3a3": 0.06, "deit_tiny/w2a2": 0.05}
    rows = []
    for model, ece in models.items():
        for seed in (0, 1):
            rows.append(row(model, "digits", "ilm", None, seed, 70.0, ece=ece + 0.01 * seed,
                            ece_paper_logit=ece / 100, kl_wrong_paper=0.2, kl_wrong_p_uniform=0.9,
                            conf_correct=0.5 + ece))
        rows.append(row(model, "digits", "ilm", 10, 0, 60.0, ece=0.9, ece_paper_logit=0.9, kl_wrong_paper=9,
                        kl_wrong_p_uniform=9, conf_correct=0.9))  # few-shot runs must be ignored
    return pd.DataFrame(rows)


QUANT = {"deit_tiny": ("deit_tiny/fp32", ("deit_tiny/w4a4", "deit_tiny/w3a3", "deit_tiny/w2a2"))}


def test_ece_vs_bits_orders_32_to_2_and_averages_seeds(quant_table):
    fig = plots.ece_vs_compression(quant_table, QUANT, "digits", x="bits")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "4", "3", "2"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.105, 0.085, 0.065, 0.055])
    assert ax.get_ylabel().startswith("ECE")


def test_paper_compatible_metrics_get_their_own_named_row(quant_table):
    fig = plots.ece_vs_compression(quant_table, QUANT, ["digits"], x="bits", metric=("ece", "ece_paper_logit"))
    assert len(fig.axes) == 2
    assert "Paper-compatible" in fig.axes[1].get_ylabel() and "Paper" not in fig.axes[0].get_ylabel()
    fig = plots.kl_vs_compression(quant_table, QUANT, "digits")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[0].startswith("KL(p || U)") and "KL(U || p)/K" in labels[1]
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), 0.2)


def test_confidence_vs_sparsity_uses_measured_sparsity_when_the_name_has_none():
    rows = [row("resnet18/dense", "digits", "ilm", None, 0, 70, conf_correct=0.8, sparsity=0.0),
            row("resnet18/gmp", "digits", "ilm", None, 0, 60, conf_correct=0.7, sparsity=0.85)]
    fig = plots.confidence_vs_compression(pd.DataFrame(rows), {"gmp-r18": ("resnet18/dense", ("resnet18/gmp",))},
                                          "digits", x="sparsity")
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0.0, 85.0])
    np.testing.assert_allclose(line.get_ydata(), [0.8, 0.7])


def test_remaining_axis_puts_dense_left_and_methods_per_family(table):
    families = {"lt": (DENSE, (MID, SPARSE))}
    fig = plots.stat_vs_compression(table, families, "digits", "acc", x="remaining", methods={"lt": ["ilm", "flm"]})
    ax = fig.axes[0]
    assert ax.xaxis_inverted() and ax.get_xscale() == "log"
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [100.0, 49.35, 11.571])


def test_unknown_x_axis_is_rejected(table):
    with pytest.raises(UnknownNameError):
        plots.stat_vs_compression(table, {"lt": (DENSE, (SPARSE,))}, "digits", x="flops")


# --- records: reliability, label mapping, class-wise, curves, prompts -------------------------------------------

def record(model, dataset="digits", seed=0, per_class=(50.0, 60.0), mapping=(3, 7), loss=(2.0, 1.0),
           test_acc=(40.0, 50.0)):
    n = len(per_class)
    return {
        "run_id": f"{model}-{seed}",
        "spec": {"model": model, "dataset": dataset, "method": "ilm", "n_shots": 5, "seed": seed},
        "metrics": {"acc": 50.0, "ece": 0.12, "per_class_acc": list(per_class),
                    "reliability": {"bin_upper": [0.25, 0.5, 0.75, 1.0], "count": [0, 3, 5, 2],
                                    "confidence": [0, 0.4, 0.6, 0.9], "accuracy": [0, 0.3, 0.7, 1.0]}},
        "curves": {"epoch": [1, 2], "train_loss": list(loss), "eval_epoch": [1, 2], "test_acc": list(test_acc)},
        "mapping": list(mapping), "mapped_source_classes": [f"src{m}" for m in mapping],
        "classes": [f"class{i}" for i in range(n)],
    }


def test_reliability_diagram_draws_only_filled_bins():
    fig = plots.reliability_diagram([record(DENSE), record(SPARSE)])
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.patches) == 6  # 3 non-empty bins x (accuracy, gap)
    assert "ECE 12.0%" in ax.get_title()


def test_upstream_accuracy_splits_measured_and_published():
    points = [{"name": "dense", "remaining": 100, "top1": 76.1, "kind": "published"},
              {"name": "lt-11.571", "remaining": 11.571, "top1": 76.1, "kind": "published"},
              {"name": "dense", "remaining": 100, "top1": 75.0, "kind": "measured"}]
    fig = plots.upstream_accuracy(points)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and ax.xaxis_inverted()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["published", "measured"]
    with pytest.raises(SpecError, match="kind"):
        plots.upstream_accuracy([{"name": "x", "remaining": 50, "top1": 1, "kind": "guessed"}])


def test_label_mapping_examples_picks_differing_classes_and_names_sources():
    images = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    split = ImageSplit("digits", "test", images, torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    dense = record(DENSE, per_class=(1, 2, 3), mapping=(5, 6, 7))
    sparse = record(SPARSE, per_class=(1, 2, 3), mapping=(5, 9, 7))
    shown = []
    fig = plots.label_mapping_examples(dense, sparse, split, n_classes=1, n_images=2,
                                       source_examples=lambda i: shown.append(i) or (images[0] if i == 6 else None))
    assert len(fig.axes) == 4  # one class x (2 target images + 2 mapped sources)
    titles = [ax.get_title(loc="left") + ax.get_title() for ax in fig.axes]
    assert titles[0] == "target: class1"  # the one class the two models map differently
    assert "src6" in titles[2] and "src9" in titles[3]
    assert shown == [6, 9]
    assert len(fig.axes[2].images) == 1 and len(fig.axes[3].images) == 0 and fig.axes[3].texts[0].get_text() == "src9"


def test_classwise_delta_picks_largest_drops_and_gains():
    dense = record(DENSE, per_class=(90, 50, 70, 20, 60, None, 30))
    sparse = record(SPARSE, per_class=(40, 55, 70, 45, 58, 10, 31))
    delta = plots.classwise_delta(dense, sparse, k=2)
    # deltas: 50, -5, 0, -25, 2, (skipped), -1
    assert delta["class"].tolist() == ["class0", "class4", "class3", "class1"]
    assert delta["change"].tolist() == ["drop", "drop", "gain", "gain"]
    np.testing.assert_allclose(delta["delta"], [50, 2, -25, -5])


def test_classwise_delta_averages_seed_records_first():
    dense = [record(DENSE, per_class=(80, 10)), record(DENSE, seed=1, per_class=(60, 30))]
    sparse = [record(SPARSE, per_class=(50, 40))]
    delta = plots.classwise_delta(dense, sparse, k=5)
    np.testing.assert_allclose(delta["delta"], [20, -20])


def test_classwise_changes_one_panel_per_dataset():
    pairs_dense = {"Pets": record(DENSE, per_class=(90, 10, 50)), "DTD": record(DENSE, per_class=(20, 30))}
    pairs_sparse = {"Pets": record(SPARSE, per_class=(40, 30, 50)), "DTD": record(SPARSE, per_class=(10, 30))}
    fig = plots.classwise_changes(pairs_dense, pairs_sparse, k=5)
    assert [ax.get_title() for ax in fig.axes] == ["Pets", "DTD"]
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["class1", "class0"]  # largest drop on top


def test_prompt_l2_per_epoch():
    zeros = {1: torch.zeros(3, 4, 4), 5: torch.zeros(3, 4, 4)}
    half = {1: torch.full((3, 4, 4), 0.5), 5: torch.ones(3, 4, 4), 9: torch.ones(3, 4, 4)}
    table = plots.prompt_l2({"dense": zeros, "sparse": half})
    assert table["epoch"].tolist() == [1, 5]  # only epochs saved for both
    np.testing.assert_allclose(table["l2"], [0.5 * math.sqrt(48), math.sqrt(48)])
    fig = plots.prompt_distance({"dense": zeros, "sparse": half, "other": zeros})
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(UnknownNameError):
        plots.prompt_l2({"dense": zeros}, reference="missing")


def test_prompt_evolution_grid_and_missing_epochs():
    dense = {e: torch.rand(3, 6, 6) for e in (1, 2, 3)}
    sparse = {e: torch.rand(3, 6, 6) for e in (2, 3, 4)}
    fig = plots.prompt_evolution(dense, sparse)
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "epoch 2"
    with pytest.raises(SpecError, match="save_prompts"):
        plots.prompt_evolution(dense, {7: torch.rand(3, 6, 6)})


def test_loss_and_accuracy_curves_average_seeds_per_model():
    records = [record(DENSE, loss=(2.0, 1.0)), record(DENSE, seed=1, loss=(3.0, 2.0)),
               record(SPARSE, loss=(4.0, 3.0), test_acc=(10.0, 20.0))]
    fig = plots.loss_curves(records)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["Dense", "LT S=11.571"]
    np.testing.assert_allclose(lines[0].get_ydata(), [2.5, 1.5])
    assert len(fig.axes[0].collections) == 1  # band only where there are two seeds
    fig = plots.accuracy_curves(records)
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), [10.0, 20.0])


def test_figures_save_headlessly(table, tmp_path):
    fig = plots.accuracy_vs_shots(table, [DENSE, SPARSE], ["digits"], "ilm")
    fig.savefig(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_plots_read_the_result_store_table(tmp_path):
    from vpcost_utils.config import RunSpec
    from vpcost_utils.running.store import ResultStore

    store = ResultStore(tmp_path / "runs")
    for model, acc in ((DENSE, 70.0), (SPARSE, 55.0)):
        for n_shots in (2, None):
            spec = RunSpec(model=model, dataset="digits", n_shots=n_shots)
            store.write({"run_id": spec.run_id, "spec": spec.to_dict(), "metrics": {"acc": acc + (n_shots or 10)},
                         "model": {"measured_sparsity": None, "bits": None}, "env": {}})
    df = store.table()
    delta = plots.delta_table(df, DENSE, [SPARSE], "digits")
    assert list(delta.index) == ["2", "full"] and np.allclose(delta[SPARSE], 15.0)
    fig = plots.accuracy_vs_shots(df, [DENSE, SPARSE], "digits", "ilm")
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [72.0, 80.0])


def test_unknown_spread_is_rejected(table):
    with pytest.raises(UnknownNameError, match="minmax"):
        plots.accuracy_vs_shots(table[table["seed"] == 0], [DENSE], "digits", "ilm", spread="iqr")
