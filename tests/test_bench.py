"""The benchmark's functions on the small smoke CNN: its output format, its ratios, and that the reference-protocol
loop it times computes the same run as ours. Speed itself is never asserted; it lives in the benchmark."""

import re
import subprocess
import sys

import pytest
import torch

from vpcost_utils import bench
from vpcost_utils.config import RunSpec
from vpcost_utils.models import create_model
from vpcost_utils.models.fold import fold_batchnorm
from vpcost_utils.vp.train_vp import load_data, run_vp

torch.set_num_threads(2)

LINE = re.compile(r"^(?P<name>[^:#][^:]*): (?P<value>\S+)$")
RATIO = re.compile(r"^# (?P<name>.+ ratio) = (?P<num>.+) / (?P<den>.+)$")


def parse(text: str) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    """(name -> value of every measured line, ratio name -> (numerator line, denominator line))."""
    values, ratios = {}, {}
    for line in text.strip().splitlines():
        if line.startswith("# "):
            if m := RATIO.match(line):
                ratios[m["name"]] = (m["num"], m["den"])
            continue
        m = LINE.match(line)
        assert m, f"not a 'name: value' line: {line!r}"
        assert m["name"] not in values, f"printed twice: {m['name']}"
        values[m["name"]] = float(m["value"])
    return values, ratios


def test_quick_bench_prints_parseable_lines_whose_ratios_are_their_quotients(capsys):
    assert bench.main(["--model", "smallcnn/dense", "--device", "cpu", "--quick", "--epochs-timed", "1",
                       "--test-images", "64", "--packing-runs", "2"]) == 0
    values, ratios = parse(capsys.readouterr().out)
    expected = {"mapping pass vs backbone forward ratio", "training step vs backbone forward+backward ratio",
                "test pass vs backbone forward ratio", "channels_last forward ratio",
                "channels_last forward+backward ratio", "BatchNorm folded forward ratio",
                "bf16 autocast forward ratio", "whole run speedup vs reference protocol ratio",
                "whole run speedup without BatchNorm folding vs reference protocol ratio",
                "packing 1-shot (2 runs x batch 8) speedup ratio", "packing 10-shot (2 runs x batch 32) speedup ratio",
                "malloc keep vs default wall s ratio", "malloc keep vs default minor page faults ratio"}
    assert expected <= set(ratios)
    for name, (num, den) in ratios.items():
        assert values[name] == pytest.approx(values[num] / values[den], rel=1e-4), name
    assert values["threads"] == torch.get_num_threads()
    for who, evals in (("ours", 10), ("ours without BatchNorm folding", 10), ("reference", 100)):  # eval_every 10 vs 1
        whole = 100 * (values[f"{who} mapping pass s/epoch"] + values[f"{who} training s/epoch"]) \
            + evals * values[f"{who} test pass s/evaluation"]
        assert values[f"{who} whole run s (extrapolated)"] == pytest.approx(whole, rel=1e-4)
    # Same seed, same batches: the timed epochs of the loops end at the same prompt and the same predictions.
    for ours in ("ours", "ours without BatchNorm folding"):
        assert values[f"{ours} vs reference prompt max abs difference"] < 1e-4
        assert values[f"{ours} vs reference mapping agreement %"] == 100
        assert values[f"{ours} vs reference test predictions agreeing %"] == 100


def test_reference_protocol_loop_reaches_our_final_accuracy():
    spec = RunSpec("smallcnn/dense", "synth_shapes", method="ilm", n_shots=5, epochs=4, eval_every=2)
    model = create_model(spec.model)
    train, test = load_data(spec)
    ours, reference, logit_gap = bench.final_accuracies(model, train, test, spec, torch.device("cpu"))
    assert ours == reference and logit_gap < 1e-3
    # ... and the bench's "ours" is run_vp's sequence of calls: the same final accuracy as the real thing.
    assert run_vp(spec, progress=False, model=create_model(spec.model))["metrics"]["acc"] == pytest.approx(ours)


def test_folding_batchnorm_keeps_the_function_and_leaves_no_foldable_pair():
    module = create_model("smallcnn/dense").module
    folded = fold_batchnorm(module)
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(folded(x), module(x), rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())


def test_run_vp_folds_batchnorm_of_float_backbones_only_and_keeps_the_result(monkeypatch):
    spec = RunSpec("smallcnn/dense", "digits", method="ilm", n_shots=3, epochs=2, eval_every=2)
    folded = run_vp(spec, progress=False)
    assert folded["runtime"]["batchnorm_folded"] > 0 and folded["runtime"]["channels_last"]
    monkeypatch.setenv("VPCOST_FOLD_BN", "0")
    plain = run_vp(spec, progress=False)
    assert plain["runtime"]["batchnorm_folded"] == 0
    assert plain["mapping"] == folded["mapping"]
    assert folded["metrics"]["acc"] == pytest.approx(plain["metrics"]["acc"], abs=1.0)  # float rounding, not a change
    monkeypatch.delenv("VPCOST_FOLD_BN")
    quantized = run_vp(spec.replace(model="smallcnn/w3a3"), progress=False)
    assert quantized["runtime"]["batchnorm_folded"] == 0  # a fake quantizer after a BatchNorm must see its output


def test_make_benchmark_runs_end_to_end_as_a_command():
    """``python -m vpcost_utils.bench`` (``make benchmark``) in its smallest setting, as a user starts it: every
    section imports and runs, random-init model included (a function-level import of a moved module once broke it)."""
    out = subprocess.run([sys.executable, "-m", "vpcost_utils.bench", "--quick", "--arch", "smallcnn", "--device",
                          "cpu", "--test-images", "32"], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    values, ratios = parse(out.stdout)
    assert {"whole run speedup vs reference protocol ratio", "malloc keep vs default wall s ratio"} <= set(ratios)
    assert "# model: smallcnn/random-init, canvas 64, inputs 32 px" in out.stdout
