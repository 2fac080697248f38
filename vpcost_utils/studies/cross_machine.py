"""Same spec, same answer across machines: a small fixed list of real specs and the records each arithmetic gave.

``EXPECTED`` (tests/data/arithmetic_expected.json) holds, per arithmetic (a record's ``arithmetic.key``, or a pin and
vendor where another session measured it), each spec's accuracy, ECE and a hash of its per-image test predictions.
``tests/test_cross_machine.py`` reruns the specs whose arithmetic matches this machine's and compares bit for bit;
``python -m vpcost_utils.studies.cross_machine`` runs them here and prints the entry to add for this machine's
arithmetic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from .. import cpu_pin
from ..arithmetic import arithmetic_key, pin_state
from ..config import RunSpec

EXPECTED = Path(__file__).resolve().parents[2] / "tests" / "data" / "arithmetic_expected.json"
_MINI = {"epochs": 16, "eval_every": 16, "canvas": 128, "max_test": 2000}

#: dense and one-shot 50 % sparse Lite0, N=1 and N=10, Fashion-MNIST, the mini profile's protocol (VP, ILM), and the
#: dose-response study's linear probe (dense, N=10, 224 px)
SPECS: tuple[RunSpec, ...] = (
    RunSpec("efficientnet_lite0/dense", "fashion_mnist", n_shots=1, seed=0, **_MINI),
    RunSpec("efficientnet_lite0/prune-50", "fashion_mnist", n_shots=1, seed=0, **_MINI),
    RunSpec("efficientnet_lite0/dense", "fashion_mnist", n_shots=10, seed=0, **_MINI),
    RunSpec("efficientnet_lite0/dense", "fashion_mnist", method="lp", n_shots=10, seed=0, eval_every=100,
            max_test=2000, holdout=10),
)


def fingerprint(record: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for two records of one spec to be one arithmetic."""
    predictions = json.dumps(record["test_predictions"], sort_keys=True).encode()
    return {"acc": record["metrics"]["acc"], "ece": record["metrics"]["ece"],
            "predictions_sha256": hashlib.sha256(predictions).hexdigest()}


def expected_here(path: Path = EXPECTED) -> dict[str, dict[str, Any]]:
    """The expected fingerprints (run id -> fingerprint) for this machine's arithmetic; empty when none is known.

    An entry matches by ``key`` (this exact pin and processor geometry) or by ``pin`` and ``cpu_vendor``."""
    pin, held = pin_state()
    vendor = cpu_pin.cpu_facts()["vendor"]
    found: dict[str, dict[str, Any]] = {}
    for entry in json.loads(path.read_text())["entries"]:
        match = entry["match"]
        if match.get("key") == arithmetic_key() or (
                held and match.get("pin") == pin and match.get("cpu_vendor") == vendor and "key" not in match):
            found.update(entry["records"])
    return found


def main(argv: list[str] | None = None) -> int:
    from ..running.runs import execute

    parser = argparse.ArgumentParser(description="Run the cross-machine specs here and print this arithmetic's "
                                                 "entry for tests/data/arithmetic_expected.json.")
    parser.add_argument("--only", nargs="*", default=None, help="run ids to run (default: all)")
    args = parser.parse_args(argv)
    records = {}
    for spec in SPECS:
        if args.only and spec.run_id not in args.only:
            continue
        records[spec.run_id] = fingerprint(execute(spec, progress=False))
        print(spec.run_id, records[spec.run_id], flush=True)
    facts = cpu_pin.cpu_facts()
    print(json.dumps({"match": {"key": arithmetic_key()}, "machine": facts["model"], "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
