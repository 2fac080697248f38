"""The arithmetic pin (cpu_pin.py): set before torch dispatches, recorded, refused when unknown or unrunnable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vpcost_utils import arithmetic, cpu_pin
from vpcost_utils.config import RunSpec
from vpcost_utils.errors import VpcostError
from vpcost_utils.running.store import ResultStore
from vpcost_utils.running.sweep import run_grid
from vpcost_utils.studies import cross_machine

X86 = cpu_pin.cpu_facts()["arch"] in ("x86_64", "AMD64") and "avx2" in cpu_pin.cpu_facts()["flags"]
SPEC = RunSpec("smallcnn/dense", "digits", n_shots=2, seed=3, epochs=1, eval_every=1, max_test=60)


def _child(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (a pin is read once per process) and return the JSON it prints."""
    # as from a fresh shell: without the settings this (pinned) test process put into its environment
    fresh = {k: v for k, v in os.environ.items()
             if k not in (*cpu_pin.PINS["avx2"]["env"], cpu_pin.SET_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**fresh, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


STATE = ("import json, os, vpcost_utils; from vpcost_utils import arithmetic as a; "
         "print(json.dumps({'state': a.pin_state(), 'key': a.arithmetic_key(), "
         "'env': os.environ.get('ATEN_CPU_CAPABILITY'), 'mkl': os.environ.get('MKL_CBWR')}))")


@pytest.mark.skipif(not X86, reason="the pins are x86 instruction-set levels; this machine has no AVX2")
def test_importing_the_package_pins_every_dispatcher_before_torch_uses_a_kernel():
    child = _child(STATE)
    assert child["state"] == ["avx2", True] and child["env"] == "avx2" and child["mkl"] == "AVX2"
    assert child["key"].startswith("pin-avx2-") and "-l2-" in child["key"]
    native = _child(STATE, VPCOST_ARITHMETIC="native")
    assert native["state"] == ["native", True] and native["key"].startswith("native-")
    assert native["key"] != child["key"]
    # a native child of a pinned process does not inherit the pin's settings
    inherited = _child(STATE, VPCOST_ARITHMETIC="native", ATEN_CPU_CAPABILITY="avx2",
                       **{cpu_pin.SET_ENV: "ATEN_CPU_CAPABILITY"})
    assert inherited["env"] is None and inherited["key"] == native["key"]


@pytest.mark.skipif(not X86, reason="the pins are x86 instruction-set levels; this machine has no AVX2")
def test_a_process_that_used_torch_before_the_package_is_recorded_as_unpinned():
    native = _child(STATE, VPCOST_ARITHMETIC="native")
    # a kernel dispatched before the import fixes PyTorch's capability: the pin cannot hold, and the key says so
    late = _child("import torch; torch.ones(64).add_(1); " + STATE)
    if native["key"].startswith("native-avx2-"):
        assert late["state"] == ["avx2", True]  # an AVX2-only machine: its native level is the pin's
    else:
        assert late["state"] == ["avx2", False] and late["key"] == native["key"]


def test_an_unknown_pin_is_refused_before_any_work_naming_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv(cpu_pin.PIN_ENV, "avx3")
    store = ResultStore(tmp_path)
    with pytest.raises(VpcostError, match="avx2, avx2-strict, avx512, native"):
        run_grid([SPEC], store, runner="serial", progress=False)
    assert not list(tmp_path.glob("*.json"))


def test_a_pin_the_processor_cannot_run_is_refused(monkeypatch, tmp_path):
    facts = {**cpu_pin.cpu_facts(), "arch": "x86_64", "flags": ("avx", "avx2", "fma"), "model": "Some AVX2 CPU"}
    monkeypatch.setattr(cpu_pin, "cpu_facts", lambda: facts)
    monkeypatch.setenv(cpu_pin.PIN_ENV, "avx512")
    assert "avx512f" in cpu_pin.problem() and "Some AVX2 CPU" in cpu_pin.problem()
    with pytest.raises(VpcostError, match="lacks; use VPCOST_ARITHMETIC=avx2"):
        run_grid([SPEC], ResultStore(tmp_path), runner="serial", progress=False)
    monkeypatch.setenv(cpu_pin.PIN_ENV, "avx2")
    assert cpu_pin.problem() is None


def test_strict_pin_turns_onednn_off_for_the_run_only(monkeypatch):
    monkeypatch.setenv(cpu_pin.PIN_ENV, "avx2-strict")
    before = torch.backends.mkldnn.enabled
    with arithmetic.fixed_arithmetic("cpu") as block:
        assert torch.backends.mkldnn.enabled is False and block["pin"] == "avx2-strict"
    assert torch.backends.mkldnn.enabled == before


def test_the_record_names_the_pin_and_the_processor(tmp_path):
    store = ResultStore(tmp_path)
    run_grid([SPEC], store, runner="serial", progress=False)
    block = json.loads(store.path(SPEC.run_id).read_text())["arithmetic"]
    assert block["key"] == arithmetic.arithmetic_key() and block["pin"] == cpu_pin.requested()
    assert block["cpu_vendor"] == cpu_pin.cpu_facts()["vendor"] and block["cpu_model"] == cpu_pin.cpu_facts()["model"]
    table = store.table()
    assert table["arithmetic"].tolist() == [block["key"]] and table["cpu_model"].tolist() == [block["cpu_model"]]


def test_expected_records_match_by_key_or_by_pin_and_vendor(tmp_path, monkeypatch):
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({"entries": [
        {"match": {"key": arithmetic.arithmetic_key()}, "records": {"aaa": {"acc": 1.0}}},
        {"match": {"pin": cpu_pin.requested(), "cpu_vendor": cpu_pin.cpu_facts()["vendor"]}, "records": {"bbb": {}}},
        {"match": {"key": "pin-avx2-elsewhere"}, "records": {"ccc": {}}}]}))
    found = cross_machine.expected_here(path)
    assert "aaa" in found and "ccc" not in found
    assert ("bbb" in found) == arithmetic.pin_state()[1]
