"""A study's records travel with its tables: archived under docs/, read back, restored into a new machine's store."""

from __future__ import annotations

import pandas as pd
import pytest

from vpcost_utils.errors import SpecError
from vpcost_utils.running.store import ResultStore
from vpcost_utils.studies import published


def _record(run_id: str, acc: float) -> dict:
    return {"run_id": run_id, "spec": {"model": "m"}, "metrics": {"acc": acc}}


def test_archived_records_stand_in_for_a_lost_store_and_the_working_store_wins(tmp_path):
    docs, output = tmp_path / "docs", tmp_path / "store"
    published.archive([_record("aaaaaaaaaaaa", 1.0), _record("bbbbbbbbbbbb", 2.0)], docs)
    assert sorted(p.name for p in (docs / "records").glob("*.json")) == ["aaaaaaaaaaaa.json", "bbbbbbbbbbbb.json"]
    # a new machine: nothing in its store, the archive answers
    got = published.records(output, docs, {"aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"})
    assert [(r["run_id"], r["metrics"]["acc"]) for r in got] == [("aaaaaaaaaaaa", 1.0), ("bbbbbbbbbbbb", 2.0)]
    # a record remade in the working store replaces the archived one; ids not wanted are left out
    ResultStore(output).write(_record("aaaaaaaaaaaa", 9.0))
    got = published.records(output, docs, {"aaaaaaaaaaaa"})
    assert [r["metrics"]["acc"] for r in got] == [9.0]


def test_restore_fills_a_new_store_once_and_never_overwrites_what_it_holds(tmp_path):
    docs, output = tmp_path / "docs", tmp_path / "store"
    assert published.restore(output, docs) == 0  # no archive yet
    published.archive([_record("aaaaaaaaaaaa", 1.0), _record("bbbbbbbbbbbb", 2.0)], docs)
    ResultStore(output).write(_record("aaaaaaaaaaaa", 9.0))
    assert published.restore(output, docs) == 1
    assert ResultStore(output).read("aaaaaaaaaaaa")["metrics"]["acc"] == 9.0
    assert ResultStore(output).read("bbbbbbbbbbbb")["metrics"]["acc"] == 2.0
    assert published.restore(output, docs) == 0


def test_a_table_rewrite_refuses_to_drop_published_runs_it_has_no_record_of(tmp_path):
    pd.DataFrame({"run_id": ["0123456789ab", "ba9876543210"], "acc": [1.0, 2.0]}).to_csv(tmp_path / "runs.csv")
    with pytest.raises(SpecError, match=r"1 run\(s\) in .*ba9876543210.*dose_study run"):
        published.check_complete([{"run_id": "0123456789ab"}], tmp_path,
                                 "python -m vpcost_utils.studies.dose_study run")
    published.check_complete([{"run_id": "0123456789ab"}, {"run_id": "ba9876543210"}], tmp_path, "x")
    published.check_complete([], tmp_path / "not-yet-published", "x")  # nothing published yet: fine
