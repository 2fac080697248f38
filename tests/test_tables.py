"""Paper tables ship with the package; ours sit beside them with the right differences; Table 1 grades by its rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpcost_utils.config import BATCH_SIZE_BY_SHOTS
from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.nb import tables

PACKAGED = Path(tables.__file__).parents[1] / "resources" / "paper_tables"


def run(model, dataset, method, acc, seed=0, n_shots=None, task="vp"):
    return {"run_id": f"{model}-{dataset}-{method}-{seed}-{n_shots}", "model": model, "dataset": dataset,
            "method": method, "task": task, "n_shots": n_shots, "seed": seed, "acc": acc}


# --- reported tables -------------------------------------------------------------------------------------------

def test_paper_tables_ship_with_the_package_and_hold_the_papers_numbers():
    assert sorted(p.name for p in PACKAGED.glob("*.csv")) == sorted(tables.PAPER_TABLE_FILES.values())
    t2 = tables.paper_table(2)
    assert len(t2) == 14 and list(t2.columns) == ["dataset", "method", "dense", "compressed_2x", "compressed_4x"]
    cifar_vp = t2[(t2["dataset"] == "CIFAR-10") & (t2["method"] == "VP")].iloc[0]
    assert (cifar_vp["dense"], cifar_vp["compressed_4x"]) == (97.31, 90.07)  # the paper's Table 2, first row
    t3 = tables.paper_table(3)
    assert len(t3) == 30 and set(t3["compression"]) == {"dense", "sparse", "32-bit", "3-bit"}
    t4 = tables.paper_table(4)
    assert math.isnan(t4[(t4["task"] == "DBPedia") & (t4["bits"] == 4)]["mean"].iloc[0])  # "-" in the paper
    assert tables.paper_table(1)["performance_drop"].tolist() == ["High", "Moderate", "Low", "Low", "High", "Moderate"]


def test_table5_from_the_config_matches_the_paper():
    ours = tables.paper_table(5)
    reported = pd.read_csv(PACKAGED / "table5_batch_sizes.csv", dtype={"n_shots": str})
    pd.testing.assert_frame_equal(ours, reported)
    assert ours.set_index("n_shots").loc["full", "batch_size"] == BATCH_SIZE_BY_SHOTS[None]


def test_unknown_table_number_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="1, 2, 3, 4, 5"):
        tables.paper_table(6)


# --- comparisons -----------------------------------------------------------------------------------------------

@pytest.fixture
def clip_runs() -> pd.DataFrame:
    dense = "clip_vit_l14_336/upop-coco"
    rows = [run(dense, "cifar10", "ilm-vp", a, s, task="clip") for s, a in enumerate((96.0, 98.0))]
    rows += [run("clip_vit_l14_336/upop-2x", "cifar10", "ilm-vp", a, s, task="clip") for s, a in enumerate((90., 91.))]
    rows += [run("clip_vit_l14_336/upop-coco", "cifar10", "ilm-vp", 10.0, 0, n_shots=5, task="clip")]  # not full data
    rows += [run("clip_vit_l14_336/upop-coco", "cifar10", "ilm", 10.0, 0, task="vp")]  # another task
    return pd.DataFrame(rows)


def test_compare_table2_puts_ours_beside_the_reported_value(clip_runs):
    full = tables.compare_table2(clip_runs)
    assert len(full) == 14 * 3 and full["n_seeds"].sum() == 4
    table = tables.compare_table2(clip_runs, keep_missing=False).set_index("model")
    assert list(table.index) == ["dense", "compressed_2x"]
    dense = table.loc["dense"]
    assert dense["ours_mean"] == 97.0 and dense["ours_std"] == pytest.approx(np.std([96, 98], ddof=1))
    assert dense["reported"] == 97.53 and dense["diff"] == pytest.approx(97.0 - 97.53)
    assert dense["our_model"] == "clip_vit_l14_336/upop-coco" and dense["n_seeds"] == 2
    two_x = table.loc["compressed_2x"]
    assert two_x["reported_drop"] == pytest.approx(97.53 - 93.04)
    assert two_x["ours_drop"] == pytest.approx(97.0 - 90.5)


def test_compare_table2_takes_stand_in_names(clip_runs):
    stand_in = clip_runs.replace({"clip_vit_l14_336/upop-coco": "tinyclip/dense", "cifar10": "synth_shapes"})
    table = tables.compare_table2(stand_in, models={"tinyclip/dense": "dense"}, datasets={"synth_shapes": "CIFAR-10"},
                                  keep_missing=False)
    assert table[["dataset", "method", "model", "our_model", "our_dataset"]].values.tolist() == [
        ["CIFAR-10", "ILM-VP", "dense", "tinyclip/dense", "synth_shapes"]]
    assert table["ours_mean"].iloc[0] == 97.0


def test_compare_table3_stand_ins_with_differences_and_drops():
    rows = [run("smallcnn/dense", "synth_text4", "max", a, s, task="crossmodal") for s, a in enumerate((80., 84.))]
    rows += [run("smallcnn/prune-90", "synth_text4", "max", a, s, task="crossmodal") for s, a in enumerate((70., 71.))]
    models = {"smallcnn/dense": ("ResNet-50", "dense"), "smallcnn/prune-90": ("ResNet-50", "sparse")}
    table = tables.compare_table3(pd.DataFrame(rows), models=models, tasks={"synth_text4": "Yelp"},
                                  keep_missing=False).set_index("compression")
    assert table.loc["dense", "reported_mean"] == 90.93 and table.loc["dense", "reported_std"] == 1.07
    assert table.loc["dense", "diff"] == pytest.approx(82.0 - 90.93)
    assert table.loc["sparse", "ours_drop"] == pytest.approx(82.0 - 70.5)
    assert table.loc["sparse", "reported_drop"] == pytest.approx(90.93 - 86.03)
    assert len(tables.compare_table3(pd.DataFrame(rows), models=models, tasks={"synth_text4": "Yelp"})) == 30


def test_compare_table4_keeps_the_unreported_cell_empty():
    rows = [run(m, "dbpedia_14", "max", acc, task="crossmodal")
            for m, acc in (("deit_tiny/fp32", 95.0), ("deit_tiny/w4a4", 94.0), ("deit_tiny/w2a2", 90.0))]
    table = tables.compare_table4(pd.DataFrame(rows), keep_missing=False).set_index("bits")
    assert sorted(table.index) == [2, 4, 32]
    assert table.loc[4, "ours_mean"] == 94.0 and math.isnan(table.loc[4, "diff"])
    assert table.loc[2, "diff"] == pytest.approx(90.0 - 95.18)
    assert table.loc[2, "ours_drop"] == pytest.approx(5.0)
    assert table.loc[2, "reported_drop"] == pytest.approx(96.90 - 95.18)


# --- Table 1 ---------------------------------------------------------------------------------------------------

def test_grade_thresholds_at_their_edges():
    high, moderate = tables.GRADE_THRESHOLDS
    assert tables.grade(high) == "High" and tables.grade(high - 0.01) == "Moderate"
    assert tables.grade(moderate) == "Moderate" and tables.grade(moderate - 0.01) == "Low"
    assert tables.grade(math.nan) == "n/a"
    assert f"{high:g} points" in tables.GRADING_RULE and f"{moderate:g} points" in tables.GRADING_RULE


def test_grading_the_papers_own_table2_gives_the_papers_upop_grade():
    # Feed Table 2's reported ILM-VP numbers back in as if they were our runs: the rule must say High, as the paper.
    t2 = tables.paper_table(2)
    ilm = t2[t2["method"] == "ILM-VP"]
    rows = []
    for _, r in ilm.iterrows():
        rows.append(run("clip/openai", r["dataset"], "ilm-vp", r["dense"], task="clip"))
        rows.append(run("clip/upop-2x", r["dataset"], "ilm-vp", r["compressed_2x"], task="clip"))
        rows.append(run("clip/upop-4x", r["dataset"], "ilm-vp", r["compressed_4x"], task="clip"))
    graded = tables.grade_table1(pd.DataFrame(rows), {"upop": ("clip/openai", ("clip/upop-2x", "clip/upop-4x"))})
    upop = graded.set_index("compression").loc["UPop"]
    assert upop["drop_points"] == pytest.approx((ilm["dense"] - ilm["compressed_4x"]).mean())
    assert upop["graded_on"] == "clip/upop-4x" and upop["n_cells"] == 7
    assert upop["our_grade"] == upop["paper_grade"] == "High" and upop["agrees"]


def test_grade_table1_uses_the_highest_level_and_averages_families():
    rows = []
    for dataset, shots in (("a", 1), ("a", None), ("b", 10)):
        for seed in (0, 1):
            rows.append(run("resnet50/dense", dataset, "ilm", 80.0 + seed, seed, shots))
            rows.append(run("resnet50/acdc-80", dataset, "ilm", 40.0, seed, shots))  # big drop, not the top level
            rows.append(run("resnet50/acdc-98", dataset, "ilm", 78.5 + seed, seed, shots))  # 1.5 points
            rows.append(run("resnet50/acdc-98", dataset, "flm", 0.0, seed, shots))  # FLM does not count
            rows.append(run("resnet18/dense", dataset, "ilm", 70.0, seed, shots))
            rows.append(run("resnet18/gmp", dataset, "ilm", 50.0, seed, shots))  # 20 points
            rows.append(run("resnet34/dense", dataset, "ilm", 70.0, seed, shots))
            rows.append(run("resnet34/gmp", dataset, "ilm", 64.0, seed, shots))  # 6 points
    families = {"acdc": ("resnet50/dense", ("resnet50/acdc-80", "resnet50/acdc-90", "resnet50/acdc-98")),
                "gmp-r18": ("resnet18/dense", ("resnet18/gmp",)), "gmp-r34": ("resnet34/dense", ("resnet34/gmp",)),
                "rigl": ("resnet50/dense", ("resnet50/rigl-90",))}
    graded = tables.grade_table1(pd.DataFrame(rows), families).set_index("compression")
    assert graded.loc["AC/DC", "drop_points"] == pytest.approx(1.5) and graded.loc["AC/DC", "our_grade"] == "Low"
    assert graded.loc["AC/DC", "graded_on"] == "resnet50/acdc-98" and graded.loc["AC/DC", "n_cells"] == 3
    assert graded.loc["GMP", "drop_points"] == pytest.approx(13.0) and graded.loc["GMP", "our_grade"] == "High"
    assert graded.loc["RigL", "our_grade"] == "n/a" and graded.loc["RigL", "agrees"] is None
    assert graded["paper_grade"].tolist() == tables.paper_table(1)["performance_drop"].tolist()


def test_grade_table1_rejects_families_without_a_row():
    with pytest.raises(SpecError, match="rows="):
        tables.grade_table1(pd.DataFrame([run("x/dense", "a", "ilm", 1.0)]), {"mystery": ("x/dense", ("x/prune-50",))})


# --- Markdown --------------------------------------------------------------------------------------------------

def test_to_markdown_aligns_numbers_and_blanks_missing_values():
    df = pd.DataFrame({"task": ["Yelp", "a|b"], "mean": [91.834, math.nan], "n": [3, 1], "ok": [True, None]})
    text = tables.to_markdown(df)
    lines = text.splitlines()
    assert lines[0] == "| task | mean | n | ok |"
    assert lines[1] == "| --- | ---: | ---: | --- |"
    assert lines[2] == "| Yelp | 91.83 | 3 | True |"
    assert lines[3] == "| a\\|b |  | 1 |  |"
    assert len(lines) == 4 and text.endswith("\n")
