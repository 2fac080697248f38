"""A study's published tables are rewritten only from every record that made them.

The per-run CSV under ``docs/`` is committed; the records (with the per-image outcomes the intervals need) live in a
store under ``outputs/``, which a new machine does not have. A ``table`` command run there would rewrite the
published tables from whatever records it finds, silently dropping the rest: it is refused instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import SpecError


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
