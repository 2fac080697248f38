"""The noise study's designs vary one source of noise each, and its decomposition reads them back right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpcost_utils import metrics
from vpcost_utils.arithmetic import arithmetic_block
from vpcost_utils.config import PROTOCOL
from vpcost_utils.running.store import ResultStore
from vpcost_utils.studies import noise_study


def test_each_design_varies_only_its_own_source():
    models = (noise_study.DENSE,)
    sample = noise_study.design_specs("sample", models, 16, 3)
    opt = noise_study.design_specs("opt", models, 16, 3)
    both = noise_study.design_specs("both", models, 16, 3)
    assert {s.seed for s in sample} == {0} and [s.data_seed for s in sample] == [0, 1, 2]
    assert {s.data_seed for s in opt} == {0} and [s.seed for s in opt] == [0, 1, 2]
    assert [(s.seed, s.data_seed) for s in both] == [(0, 0), (1, 1), (2, 2)]
    # the repetition 0 of every design is one run: the store computes it once
    assert sample[0].run_id == opt[0].run_id == both[0].run_id
    assert {s.method for s in noise_study.design_specs("flm", models, 16, 2)} == {"flm"}
    assert {s.precision for s in noise_study.design_specs("bf16", models, 16, 2)} == {"bf16"}
    with pytest.raises(ValueError, match="unknown design"):
        noise_study.design_specs("nope", models, 16, 2)


def _write(store, spec, acc, threads=1):
    """A record whose first acc % of 200 test images are right (the per-image outcomes match the accuracy)."""
    labels = torch.arange(10).repeat(20)
    logits = torch.zeros(200, 10)
    hits = torch.zeros(200, dtype=torch.bool)
    hits[: int(round(acc * 2))] = True
    logits[torch.arange(200), torch.where(hits, labels, (labels + 1) % 10)] = 5.0
    record = {"run_id": spec.run_id, "protocol": PROTOCOL,
              "arithmetic": arithmetic_block(threads),
              "spec": spec.to_dict(), "metrics": {"acc": 100 * hits.double().mean().item(), "ece": 0.1},
              "convergence": {"loss_change_last_tenth": -0.01, "mapping_changes_last_quarter": 0, "settled": True},
              "test_predictions": metrics.encode_predictions(logits, labels), "env": {"wall_time_s": 10.0}}
    store.write(record)


def test_decomposition_reads_the_gap_sd_of_each_design(tmp_path):
    runs, twins = ResultStore(tmp_path / "runs"), ResultStore(tmp_path / "runs-threads2")
    comp = noise_study.COMPRESSED[0]
    # 'both': gaps 0, 10, 20 (sd 10); 'sample': 0, 2, 4 (sd 2); 'opt': 0, 5, 10 (sd 5); arith twins: +1, -1, +1
    for design, gaps in (("both", (0, 10, 20)), ("sample", (0, 2, 4)), ("opt", (0, 5, 10))):
        dense = noise_study.design_specs(design, (noise_study.DENSE,), 64, 3)
        sparse = noise_study.design_specs(design, (comp,), 64, 3)
        for d, c, gap in zip(dense, sparse, gaps, strict=True):
            _write(runs, d, 60.0)
            _write(runs, c, 60.0 - gap)
    for i, wobble in enumerate((1, -1, 1)):
        d, c = (noise_study.design_specs("both", (m,), 64, 3)[i] for m in (noise_study.DENSE, comp))
        _write(twins, d, 60.0, threads=2)
        _write(twins, c, 60.0 - (0, 10, 20)[i] - wobble, threads=2)
    table = noise_study.decomposition(tmp_path)
    sd = {r.design: r.gap_sd for r in table.itertuples()}
    assert sd["both"] == pytest.approx(10.0) and sd["sample"] == pytest.approx(2.0) and sd["opt"] == pytest.approx(5.0)
    assert sd["arith"] == pytest.approx(np.sqrt(1 / 2))  # one draw's sd from twin differences of +-1
    both = table[table["design"] == "both"].iloc[0]
    assert both["gap"] == pytest.approx(10.0) and both["test_se"] > 0
