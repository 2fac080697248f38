"""A study's records travel with its published tables, and the tables are rewritten only from all of them.

A study spans sessions on machines that do not keep ``outputs/`` (records outside the repository have been lost,
and with them the per-image outcomes the intervals need). So ``write`` copies every record it tabulates into
``docs/<study>/records/`` (a ``ResultStore``: one JSON a run, about 25 kB with 2,000 test images), which is
committed with the tables; ``records`` reads the working store and that archive; ``restore`` puts archived records
into a working store before a ``run``, where the store's own staleness rules decide whether they count on this
machine (another arithmetic key: made again). A ``table`` command that still lacks a record of a published run is
refused instead of silently dropping it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import SpecError
from ..running.store import ResultStore


def check_complete(records: list[dict], docs: Path, remake: str) -> None:
    """Raise when ``docs/runs.csv`` lists a run with no record in ``records``; ``remake``: the command that makes
    them again."""
    published = docs / "runs.csv"
    if not published.exists():
        return
    have = {r["run_id"] for r in records}
    lost = sorted(set(pd.read_csv(published, dtype={"run_id": str})["run_id"]) - have)
    if lost:
        raise SpecError(f"{len(lost)} run(s) in {published} (e.g. {lost[0]}) have no record in the store: rewriting "
                        f"the tables now would drop them. Point --output at the store that holds them, or run "
                        f"`{remake}` to make them again first")


def archive_of(docs: Path) -> ResultStore:
    """The committed copy of the records behind ``docs``'s tables."""
    return ResultStore(docs / "records")


def records(output: Path, docs: Path, wanted: set[str]) -> list[dict]:
    """The records of ``wanted`` run ids: from the working store ``output``, else from ``docs``'s archive; by id."""
    found = {r["run_id"]: r for r in archive_of(docs).records() if r["run_id"] in wanted} if docs.exists() else {}
    found.update({r["run_id"]: r for r in ResultStore(output).records() if r["run_id"] in wanted})
    return [found[k] for k in sorted(found)]


def archive(records_: list[dict], docs: Path) -> None:
    """Copy ``records_`` into ``docs``'s archive (atomic writes; unchanged ones are left alone)."""
    store = archive_of(docs)
    for record in records_:
        if not store.path(record["run_id"]).exists() or store.read(record["run_id"]) != record:
            store.write(record)


def restore(output: Path, docs: Path) -> int:
    """Put ``docs``'s archived records that ``output`` lacks into it; returns how many. The store then skips those
    whose arithmetic, protocol and threads match this process and makes the others again."""
    target, n = ResultStore(output), 0
    for record in archive_of(docs).records() if (docs / "records").exists() else []:
        if not target.path(record["run_id"]).exists():
            target.write(record)
            n += 1
    return n
