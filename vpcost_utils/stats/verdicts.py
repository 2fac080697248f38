"""The one wording of a verdict: an ``intervals.verdict`` of a dense-minus-compressed gap in the paper's terms.

The report (``report.analysis``) and the verdict study (``studies.verdict_study``) both print it.
"""

from __future__ import annotations


def verdict_words(verdict: str) -> str:
    """``above 0`` -> the compressed model transfers worse, ``below 0`` -> better, ``within +-H`` -> no gap larger
    than +-H points; anything else (``no verdict (...)``) as it is."""
    if verdict == "above 0":
        return "compressed transfers worse"
    if verdict == "below 0":
        return "compressed transfers better"
    if verdict.startswith("within +-"):
        return f"no gap larger than +-{verdict.removeprefix('within +-')} points"
    return verdict
