import pandas as pd

from vpcost_utils import grids, profiles
from vpcost_utils.nb import notebook


def _table():
    rows = []
    for model, acc in (("a/dense", {2: 40.0, None: 60.0}), ("a/prune-90", {2: 30.0, None: 58.0}),
                       ("a/prune-95", {2: 20.0, None: 57.0})):
        for shots, value in acc.items():
            rows.append({"model": model, "dataset": "d", "method": "ilm", "n_shots": shots, "seed": 0, "acc": value,
                         "ece": value / 100})
    return pd.DataFrame(rows)


def test_accuracy_summary_and_gap_sentence_use_the_dense_model_of_each_family():
    families = {"f": ("a/dense", ("a/prune-90", "a/prune-95"))}
    summary = notebook.accuracy_summary(_table(), families)
    drops = summary.set_index(["model", "shots"])["drop_vs_dense"]
    assert drops[("a/prune-95", "2")] == 20.0 and drops[("a/dense", "full")] == 0.0
    sentence = notebook.describe_gap(_table(), families)
    assert "+15.0 points at N=2" in sentence and "+2.5 at N=full" in sentence
    trend = notebook.describe_trend(_table(), families, "ece")
    assert "0.500 (dense) -> 0.385 (a/prune-95)" in trend


def test_section_grids_match_the_profile():
    cfg = profiles.settings("sparse_transfer", "smoke")
    specs = grids.section_runs("sparse_transfer", "smoke")
    models = grids.family_models(cfg["families"])
    assert len(specs) == len(models) * len(cfg["datasets"]) * len(cfg["methods"]) * len(cfg["shots"])
    assert models[0] == "smallcnn/dense" and len(set(models)) == len(models)
    label = grids.section_runs("label_mapping", "smoke")
    saved = [s for s in label if s.save_prompts]
    assert saved and saved[0].save_prompts[0] == 1 and saved[0].save_prompts[-1] == cfg["epochs"]
    assert grids.prompt_epochs(100) == (1, *range(10, 101, 10))
