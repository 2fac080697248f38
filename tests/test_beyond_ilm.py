"""Beyond ILM (issue #35): BLM, BLM+ and FullyMap against the reference algorithms, end to end, and resumed.

The test-side references below are written from the algorithm as ``tmlr-group/BayesianLM`` ``mapping.py``
(``blm_reweight_matrix``, ``blmp_reweight_matrix``) computes it, with plain Python loops and floats, so they share
no code and no vectorisation with ``vpcost_utils.mapping``.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_vp import tiny_task

from vpcost_utils.config import METHODS, RunSpec
from vpcost_utils.errors import UnknownNameError
from vpcost_utils.running.runs import execute
from vpcost_utils.vp import label_mapping as mapping
from vpcost_utils.vp import train_vp as train

pytestmark = pytest.mark.usefixtures("one_thread")

NEW = ("blm", "blm+", "fullymap")


def _reference_bayesian(joint: list[list[float]], lap: float) -> list[list[float]]:
    """Rows divided by (row sum + lap), then columns by their sums, one entry at a time."""
    rows, cols = len(joint), len(joint[0])
    smoothed = [[joint[s][t] / (sum(joint[s]) + lap) for t in range(cols)] for s in range(rows)]
    col_sums = [sum(smoothed[s][t] for s in range(rows)) for t in range(cols)]
    return [[smoothed[s][t] / col_sums[t] for t in range(cols)] for s in range(rows)]


def reference_blm(logits: torch.Tensor, labels: torch.Tensor, num_targets: int, lap: float = 1.0) -> torch.Tensor:
    num_source = logits.shape[1]
    joint = [[0.0] * num_targets for _ in range(num_source)]
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        best = 0
        for s in range(num_source):  # the first maximum, as torch.argmax
            if row[s] > row[best]:
                best = s
        joint[best][y] += 1
    return torch.tensor(_reference_bayesian(joint, lap), dtype=torch.float64)


def reference_blmp(logits: torch.Tensor, labels: torch.Tensor, num_targets: int, k: int, lap: float = 1.0
                   ) -> torch.Tensor:
    num_source = logits.shape[1]
    joint = [[0.0] * num_targets for _ in range(num_source)]
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        probs = [e / total for e in exps]
        for s in sorted(range(num_source), key=lambda j: -probs[j])[:k]:
            joint[s][y] += probs[s]
    return torch.tensor(_reference_bayesian(joint, lap), dtype=torch.float64)


def _fixed(n: int = 90, num_source: int = 40, num_targets: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_targets
    # a few source classes dominate, so the argmax counts have structure (and empty rows) as real votes do
    logits = torch.randn(n, num_source, generator=g, dtype=torch.float64) * 2
    logits[:, :8] += 3 * torch.nn.functional.one_hot(labels % 8, num_source)[:, :8].double()
    return logits, labels, num_targets


@pytest.mark.parametrize("seed", range(5))
def test_blm_matrix_equals_the_reference_algorithm(seed):
    logits, labels, k = _fixed(seed=seed)
    ours = mapping.blm_matrix(logits, labels, k)
    ref = reference_blm(logits, labels, k)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-15)
    assert ours.shape == (40, k) and torch.allclose(ours.sum(0), torch.ones(k, dtype=torch.float64))
    assert (ours == 0).any(), "source classes nobody voted for get weight 0 (lap only enlarges row sums)"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 7])
def test_blmp_matrix_equals_the_reference_algorithm(seed, k):
    logits, labels, num_targets = _fixed(seed=seed)
    ours = mapping.blmp_matrix(logits, labels, num_targets, k=k)
    ref = reference_blmp(logits, labels, num_targets, k)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-15)
    assert int((ours != 0).any(1).sum()) <= len(labels) * k


def test_blmp_default_top_k_is_the_references_ratio_at_least_one():
    assert [mapping.blmp_top_k(k) for k in (5, 10, 20, 100, 397)] == [1, 1, 3, 15, 59]
    logits, labels, num_targets = _fixed(num_targets=20, n=100)
    torch.testing.assert_close(mapping.blmp_matrix(logits, labels, num_targets),
                               reference_blmp(logits, labels, num_targets, k=3), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ["blm", "blm+"])
def test_the_batched_pass_gives_the_one_set_matrix(method):
    logits, labels, k = _fixed()
    logits32 = logits.float()
    batches = [(logits32[i:i + 7], labels[i:i + 7]) for i in range(0, len(labels), 7)]
    got = mapping.estimate_mapping(method, lambda x: x, batches, k)
    whole = mapping.blm_matrix(logits32, labels, k) if method == "blm" else mapping.blmp_matrix(logits32, labels, k)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, whole.float(), rtol=1e-6, atol=1e-7)


def test_a_matrix_mapping_multiplies_the_raw_logits_as_the_reference():
    logits, labels, k = _fixed()
    w = mapping.blm_matrix(logits, labels, k)
    torch.testing.assert_close(mapping.map_logits(logits, w), torch.mm(logits, w))
    index = torch.tensor([3, 0, 5])
    assert torch.equal(mapping.map_logits(logits, index), logits[:, index])
    assert mapping.dominant_sources(w).tolist() == w.argmax(0).tolist()


def _tiny_task(method: str):
    """A VPTask on a random 2-layer backbone and 12 random images: the training step alone, in milliseconds."""
    task, _, split = tiny_task(method)
    return task, split


def test_fullymap_is_a_layer_on_source_logits_and_gradients_reach_prompt_and_layer():
    task, split = _tiny_task("fullymap")
    layer = task.mapping
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (4, 50) and layer.bias.shape == (4,)
    trained = {id(p) for group in task.optimizer.param_groups for p in group["params"]}
    assert {id(task.prompt.theta), id(layer.weight), id(layer.bias)} <= trained
    assert len(task.optimizer.param_groups) == 1, "one learning rate for prompt and layer, as AutoVP"
    before = (task.prompt.theta.detach().clone(), layer.weight.detach().clone(), layer.bias.detach().clone())
    task.begin_epoch(0)
    loss, logits, labels = task.step(torch.arange(8), 0)
    assert logits.shape == (8, 4) and torch.isfinite(loss)
    for p in (task.prompt.theta, layer.weight, layer.bias):
        assert p.grad is not None and p.grad.abs().sum() > 0
    after = (task.prompt.theta, layer.weight, layer.bias)
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    summary = mapping.mapping_summary(layer)
    assert summary["shape"] == [50, 4] and len(summary["top"]) == 4 and len(summary["bias"]) == 4


@pytest.mark.parametrize("method", ["blm", "blm+"])
def test_blm_is_re_estimated_each_epoch_in_the_one_mapping_pass(method, monkeypatch):
    task, _ = _tiny_task(method)
    calls = []
    real = train._frequency_mapping
    monkeypatch.setattr(train, "_frequency_mapping", lambda *a, **kw: calls.append(a[-1]) or real(*a, **kw))
    for epoch in range(3):
        task.begin_epoch(epoch)
        task.step(torch.arange(8), epoch)
    assert calls == [method] * 3
    assert task.mapping.shape == (50, 4) and task.mapping.dtype == torch.float32
    torch.testing.assert_close(task.mapping.sum(0), torch.ones(4))


def test_an_unknown_method_is_refused_before_any_work_listing_the_known_ones(monkeypatch):
    monkeypatch.setattr(train, "create_model", lambda *a, **kw: pytest.fail("a model was loaded"))
    with pytest.raises(UnknownNameError) as err:
        RunSpec("smallcnn/dense", "digits", method="smm")
    for known in METHODS["vp"]:
        assert known in str(err.value)
    assert set(NEW) <= set(METHODS["vp"]) and set(NEW) <= set(mapping.MAPPING_METHODS)


# --- end to end on the smoke profile's generated data, and resumed from a mid-run checkpoint -----------------------

RESULT = ("metrics", "curves", "mapping", "mapping_history", "mapping_matrix", "test_predictions", "convergence")


@pytest.mark.parametrize("method", NEW)
def test_a_tiny_run_per_method_ends_to_end_and_resumes_to_the_same_record(killed_then_resumed, method,
                                                                          tmp_path):
    spec = RunSpec("smallcnn/dense", "synth_shapes", method=method, n_shots=2, seed=1, epochs=4, eval_every=2,
                   max_test=200)
    whole = execute(spec, progress=False)
    assert whole["spec"]["method"] == method and 0 <= whole["metrics"]["acc"] <= 100
    assert math.isfinite(whole["metrics"]["ece"]) and len(whole["mapping"]) == 10
    matrix = whole["mapping_matrix"]
    assert matrix["shape"] == [100, 10] and len(matrix["top"]) == 10
    if method != "fullymap":  # every column of a BLM matrix is a distribution over source classes
        assert all(0 < m <= 1 + 1e-6 for m in matrix["top_mass"])
        assert whole["mapping"] == [col[0][0] for col in matrix["top"]]
    resumed, calls = killed_then_resumed(spec, 2, tmp_path / "c.pt")
    assert len(calls) == 2 and resumed["runtime"]["resumed_at_epoch"] == 2
    for key in RESULT:
        assert resumed[key] == whole[key], key


def test_the_bench_section_prints_each_methods_step_cost_and_its_ratio_to_ilm(capsys):
    from test_bench import parse

    from vpcost_utils.bench.methods import method_lines
    from vpcost_utils.models import create_model

    ratios = method_lines(create_model("smallcnn/dense"), torch.device("cpu"), input_size=16, shots=2, epochs=1,
                          batch=8)
    values, printed = parse(capsys.readouterr().out)
    assert set(ratios) == set(mapping.MAPPING_METHODS) - {"ilm"}
    for method in ratios:
        name = f"{method} vs ilm step cost ratio"
        assert printed[name] == (f"{method} s per step", "ilm s per step")
        assert values[name] == pytest.approx(values[f"{method} s per step"] / values["ilm s per step"], rel=1e-4)
        assert values[f"{method} s per step"] > 0


def test_the_smoke_label_mapping_section_runs_every_method_and_refuses_an_unknown_one():
    from vpcost_utils import profiles
    from vpcost_utils.grids import section_runs

    cfg = profiles.settings("label_mapping", "smoke")
    specs = section_runs("label_mapping", "smoke")
    others = [s.run_id for s in specs if s.method != "ilm"]
    assert len(set(others)) == len(others) == 2 * 2 * 5, "each compared method once per model and dataset"
    pair = (cfg["dense"], cfg["sparse"])
    figures = {(s.model, s.dataset) for s in specs if s.method == "ilm" and not s.save_prompts and s.model in pair}
    assert figures == {(m, d) for m in pair for d in cfg["datasets"]}, "ILM is the figures' own runs"
    for method in mapping.MAPPING_METHODS:  # every prompt method (the linear probe is not in this comparison)
        for model in (cfg["dense"], cfg["sparse"]):
            assert {s.dataset for s in specs if s.method == method and s.model == model} == set(cfg["datasets"])
    with pytest.raises(UnknownNameError, match="blm\\+.*fullymap"):
        section_runs("label_mapping", "smoke", compare_methods=["ilm", "smm"])


def test_the_planner_counts_a_mapping_pass_per_epoch_for_blm_and_none_for_fullymap():
    from vpcost_utils.running.plan import run_passes

    base = RunSpec("smallcnn/dense", "digits", n_shots=2, epochs=5, eval_every=5)
    passes = {m: run_passes(base.replace(method=m)) for m in ("ilm", "blm", "blm+", "fullymap", "flm")}
    assert passes["blm"].mapping == passes["blm+"].mapping == passes["ilm"].mapping == 5 * passes["flm"].mapping > 0
    assert passes["fullymap"].mapping == 0 and passes["fullymap"].train == passes["ilm"].train


def test_the_pilot_s_other_cells_change_only_the_target_or_n():
    from vpcost_utils.studies import beyond_pilot as bp

    base = bp.pilot_specs([0, 1], ["ilm", "fullymap"])
    other = bp.pilot_specs([0, 1], ["ilm", "fullymap"], {"dataset": "mnist", "n_shots": 50})
    assert [s.run_id for s in base] == [s.run_id for s in bp.pilot_specs([0, 1], ["ilm", "fullymap"], bp.CELL)]
    for a, b in zip(base, other, strict=True):
        assert (b.dataset, b.n_shots) == ("mnist", 50) and a.run_id != b.run_id
        assert (a.model, a.method, a.seed, a.epochs, a.canvas, a.max_test) == (b.model, b.method, b.seed, b.epochs,
                                                                               b.canvas, b.max_test)
