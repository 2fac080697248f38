"""``docs/models.md`` is generated from the registry (``python -m vpcost_utils.models > docs/models.md``).

A test checks the committed file equals this output, so the list cannot drift from the code.
"""

from __future__ import annotations

from ._registry import get_entry, list_models

HEADER = """# Models

Every model name the package knows, where its weights come from, whether they can be had today,
and the labelled substitute used when they cannot (only when a run sets `substitute=True`; every
result records it). Generated from the registry by `python -m vpcost_utils.models > docs/models.md`.
Checkpoint files go in `$VPCOST_HOME/checkpoints/` (default `~/.cache/vpcost/checkpoints/`).

| name | compression | sparsity / bits | published top-1 | source | file | obtainable | substitute |
|---|---|---|---|---|---|---|---|
"""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text not in (None, "") else "-"


def registry_markdown() -> str:
    """The models table, one row per registered name, sorted by name."""
    rows = []
    for name in list_models():
        e = get_entry(name)
        level = f"{e.sparsity:.1%} zeros" if e.sparsity is not None else (f"{e.bits} bit" if e.bits else "-")
        substitute = e.substitute_note if e.substitute is not None else "none"
        rows.append("| " + " | ".join(_cell(x) for x in (
            f"`{name}`", f"{e.compression} ({e.method})", level, e.top1, e.source, e.filename, e.obtainable,
            substitute)) + " |")
    return HEADER + "\n".join(rows) + "\n"
