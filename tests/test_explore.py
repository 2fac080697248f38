import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from vpcost_utils.nb import explore  # noqa: E402


def _table():
    rows = []
    for model, base in (("smallcnn/dense", 40.0), ("smallcnn/prune-90", 30.0)):
        for shots in (2, 10, None):
            for seed in (0, 1):
                rows.append({"model": model, "dataset": "digits", "method": "ilm", "task": "vp", "n_shots": shots,
                             "seed": seed, "acc": base + (shots or 30) / 10 + seed, "ece": 0.1, "sparsity": None,
                             "bits": None, "substitute": False})
    return pd.DataFrame(rows)


def test_accuracy_panel_redraws_the_chosen_models_from_stored_results():
    panel = explore.accuracy_panel(_table(), show=False)
    assert panel.controls["model"] == ["smallcnn/dense", "smallcnn/prune-90"]
    assert panel.controls["reference"] == ["smallcnn/dense"]
    fig = panel.redraw(dataset="digits", method="ilm", reference="smallcnn/dense", model="smallcnn/prune-90")
    ax = fig.axes[0]
    means = sorted(line.get_ydata().mean() for line in ax.get_lines() if len(line.get_ydata()) == 3)
    # dense: 40 + {0.2, 1, 3} + 0.5 ; sparse: 10 points lower
    assert means == pytest.approx([30.5 + 4.2 / 3, 40.5 + 4.2 / 3])
