"""An unreachable network is detected once, up front: the missing-files list comes in seconds, without retries."""

from __future__ import annotations

import sys
import time

import pytest

from vpcost_utils import fetch

VARS = ("VPCOST_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture
def fresh_network_state(monkeypatch):
    """No offline variable set, nothing settled yet; all restored afterwards."""
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fetch, "_settled", None)
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", hub.HF_HUB_OFFLINE)
    return monkeypatch


def _answering(monkeypatch, up: set[str]):
    calls = []

    def fake(hosts, timeout=fetch.PROBE_TIMEOUT_S):
        calls.append(list(hosts))
        return {h: h in up for h in hosts}

    monkeypatch.setattr(fetch, "reachable", fake)
    return calls


def test_no_host_answers_puts_everything_offline_once(fresh_network_state):
    calls = _answering(fresh_network_state, up=set())
    line = fetch.settle_network()
    assert "unreachable" in line and "VPCOST_OFFLINE=1" in line
    assert fetch.offline()
    assert all(__import__("os").environ[v] == "1" for v in VARS)
    assert fetch.settle_network() == line and len(calls) == 1  # probed once per process
    assert fetch.HF_HOST in calls[0] and "pypi.org" in calls[0]


def test_only_the_hub_down_keeps_the_registries(fresh_network_state):
    import os

    _answering(fresh_network_state, up=set(fetch.REGISTRY_HOSTS))
    line = fetch.settle_network()
    assert "HF_HUB_OFFLINE=1" in line
    assert os.environ["HF_HUB_OFFLINE"] == "1" and not fetch.offline()  # mini's registry files still fetch


def test_reachable_network_changes_nothing(fresh_network_state):
    import os

    _answering(fresh_network_state, up={fetch.HF_HOST, *fetch.REGISTRY_HOSTS})
    assert fetch.settle_network() == "network: reachable"
    assert not any(v in os.environ for v in VARS)


def test_an_explicit_choice_is_not_probed(fresh_network_state):
    import os

    def boom(*a, **k):
        raise AssertionError("probed although VPCOST_OFFLINE was set")

    fresh_network_state.setattr(fetch, "reachable", boom)
    fresh_network_state.setenv("VPCOST_OFFLINE", "1")
    assert "off" in fetch.settle_network() and os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_probe_is_bounded_in_time():
    start = time.monotonic()
    assert fetch.reachable(["vpcost-probe.invalid"], timeout=0.5) == {"vpcost-probe.invalid": False}
    assert time.monotonic() - start < 1.5


def test_reproduce_lists_what_is_missing_within_seconds(fresh_network_state, isolated_home, tmp_path, capsys):
    from vpcost_utils.nb import reproduce

    _answering(fresh_network_state, up=set())
    fresh_network_state.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    start = time.monotonic()
    assert reproduce.main(["--profile", "quick", "--output-dir", str(tmp_path)]) == 2
    took = time.monotonic() - start
    out, err = capsys.readouterr()
    assert "working offline" in out
    assert "nothing was trained" in err and "cifar10" in err
    assert "Retrying" not in out + err and "thrown while requesting" not in out + err
    assert took < 30, took
