"""The agreement study's grid and analysis (studies/agreement_study.py), on made-up rows: no training."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from vpcost_utils.studies import agreement_study as study  # noqa: E402


def test_the_grid_pairs_every_compressed_model_with_dense_on_the_same_seeds():
    specs = study.specs(3, ["efficientnet_lite0/prune-50", "efficientnet_lite0/w4a4-recovered"])
    assert len(specs) == 9 and len({s.run_id for s in specs}) == 9
    by_model = {}
    for s in specs:
        by_model.setdefault(s.model, set()).add(s.seed)
        assert (s.dataset, s.n_shots, s.canvas, s.epochs) == ("mnist", 10, 128, 16)
    assert set(by_model) == {study.DENSE, "efficientnet_lite0/prune-50", "efficientnet_lite0/w4a4-recovered"}
    assert all(seeds == {0, 1, 2} for seeds in by_model.values())
    assert set(study.MODELS) >= {"efficientnet_lite0/prune-50-recovered", "efficientnet_lite0/int8-tflite"}


def test_rank_correlation_and_figure():
    rows = pd.DataFrame({"model": list("abcd"), "kind": ["PTQ", "PTQ", "one-shot sparse", "recovered sparse"],
                         "agreement_128": [10.0, 40.0, 60.0, 90.0], "gap": [9.0, 5.0, 2.0, -1.0],
                         "gap_low": [5.0, 1.0, -2.0, -5.0], "gap_high": [13.0, 9.0, 6.0, 3.0], "seeds": [3, 3, 3, 4]})
    assert study.rank_correlation(rows) == pytest.approx(-1.0)
    assert study.rank_correlation(rows.assign(gap=[-1.0, 2.0, 5.0, 9.0])) == pytest.approx(1.0)
    fig = study.figure(rows)
    ax = fig.axes[0]
    assert "3-4 seeds" in ax.get_title() and len(ax.get_legend().get_texts()) == 3


def test_unknown_models_are_refused(capsys):
    with pytest.raises(SystemExit):
        study.main(["--models", "efficientnet_lite0/prune-60"])
    assert "unknown model" in capsys.readouterr().err
