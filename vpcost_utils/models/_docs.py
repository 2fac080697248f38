"""``docs/models.md`` is generated from the registry (``python -m vpcost_utils.models > docs/models.md``).

A test checks the committed file equals this output, so the list cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable

from ._registry import get_entry, list_models

#: Sections appended by the code that builds models here (``built/``), which registers them on import: the registry
#: must not import what sits above it (tests/test_layering.py).
SECTIONS: list[Callable[[], str]] = []

HEADER = """# Models

Every model name the package knows, where its weights come from, whether they can be had today,
and the labelled substitute used when they cannot (only when a run sets `substitute=True`; every
result records it). Generated from the registry by `python -m vpcost_utils.models > docs/models.md`.
Checkpoint files go in `$VPCOST_HOME/checkpoints/` (default `~/.cache/vpcost/checkpoints/`).

| name | compression | sparsity / bits | published top-1 | source | file | obtainable | substitute |
|---|---|---|---|---|---|---|---|
"""


# Measured, not generated: building these models takes minutes to an hour each, which a doc generator must not.
# `python -m vpcost_utils.built.recover --compare efficientnet_lite0/prune-30 ...` prints the rows again.
AGREEMENT = """
## How much of the dense ImageNet function the Lite0 models made here keep

Measured 2026-12-03 on this repository's recipes (`built/agreement.py`): agreement with
`efficientnet_lite0/dense` on 256 random crops of three photographs that no calibration or recovery step
sees (`chelsea`, `coffee`, `grace_hopper`), at 224 px (the weights' resolution) and 128 px (the mini
canvas); KL is the mean KL(dense || model) of the ImageNet softmax; "labelled" counts the held-out photos
whose centre crop keeps the dense model's top-1 class. Build times are wall minutes on one thread while
three other jobs shared the 2 cores (about half a core each); alone on a core a sparse step takes about
1.6 s and a quantized one 2.6 s, so 800 steps are about 21 and 35 minutes. `prune-50-recovered` was rebuilt
on 2026-12-04 (the cache had been lost) on one thread, beside one other job: 22 minutes, and 59.4 / 61.7 %
where the 2026-12-02 build of the same recipe had 58.6 / 59.8 % (its thread counts were not recorded). Since
then a build trains on the runs' pinned thread count (`VPCOST_RUN_THREADS`, default 1), which is in the
cached file's name and provenance; the other recovered rows are from builds before that pin (2026-12-03, one
thread for the build by the log, the teacher pass's count unrecorded) and a rebuild may differ from them by
about a point, as this one did. The machine matters too: the same one-thread recipe built on 2026-12-07 on an
AVX2-only AMD EPYC (the earlier builds ran on an AVX-512 Intel Xeon) took 23 minutes beside one other job
and gave 58.6 / 60.9 % (the `AVX2 build` row), a different model from the same recipe. So the CPU's kernel
set (now `arithmetic.arithmetic_key`: the pin and processor) is in the cached file's name and provenance
beside the thread count, and
in every run record: the N=10 verdict study ran on the Xeon's build, the N=1 study on the EPYC's.

| model | how | steps | build (min) | agreement 224 px (%) | KL 224 | agreement 128 px (%) | KL 128 | labelled same |
|---|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

Targets from the published few-sample recoveries (issue #22): 50 % sparse at least 80 %, W4A8 at least 85 %,
W4A4 at least 65 % agreement. Reached: {reached}.
"""
AGREEMENT_ROWS = [
    ("prune-30", "one-shot global magnitude", "-", "-", 82.81, 0.079, 82.42, 0.306, "3/3"),
    ("prune-50", "one-shot global magnitude", "-", "-", 31.64, 0.797, 12.89, 2.070, "1/3"),
    ("prune-70", "one-shot global magnitude", "-", "-", 0.0, 5.569, 0.0, 6.573, "0/3"),
    ("prune-50-recovered", "GMP 30 -> 50 % + distillation", 800, 22, 59.38, 0.290, 61.72, 0.505, "1/3"),
    ("prune-50-recovered", "the same, AVX2 build (2026-12-07)", 800, 23, 58.59, 0.273, 60.94, 0.506, "1/3"),
    ("prune-50-reconstructed", "layer-wise OBS reconstruction 50 % + distillation", 800, 28, 48.44, 0.503, 62.89,
     0.632, "1/3"),
    ("prune-70-recovered", "GMP 30 -> 70 % + distillation", 800, 40, 43.0, 0.913, 27.7, 1.558, "1/3"),
    ("w4a4", "LSQ PTQ, per-channel weights", "-", "-", 2.34, 4.688, 3.12, 7.716, "0/3"),
    ("w4a4-recovered", "W4A4 LSQ QAT by distillation", 400, 50, 65.62, 0.412, 81.64, 0.465, "2/3"),
    ("w4a8-recovered", "W4A8 LSQ QAT by distillation", 800, 80, 70.70, 0.226, 82.03, 0.263, "2/3"),
    ("int8-tflite", "Google's int8 TFLite file (published)", "-", "-", 95.70, 0.008, 37.11, 0.66, "3/3"),
]
AGREEMENT_REACHED = ("50 % sparse 59.4 % (224 px) / 61.7 % (128 px), short of 80 (layer-wise reconstruction "
                     "instead of the magnitude ramp: 59.8 % at 128 px before any distillation, 48.4 % / 62.9 % after "
                     "the same 800 steps, built 2026-12-04 in 28 min on one thread beside two VP workers: no closer "
                     "at 128 px, worse at 224); W4A8 70.7 % / 82.0 %, short of 85; "
                     "W4A4 65.6 % / 81.6 %, at the target. Google's int8 model keeps 95.7 % at its own 224 px but only "
                     "37.1 % at 128 px (its activation ranges are fixed for 224-px statistics); 70 % sparse recovered "
                     "keeps 43.0 % / 27.7 % (one-shot 70 %: 0 %; no target was set for it; built 2026-12-03 in 40 min "
                     "beside two VP workers)")


def agreement_markdown() -> str:
    """The measured agreement section of docs/models.md."""
    rows = "\n".join("| " + " | ".join([f"`efficientnet_lite0/{r[0]}`", *(str(c) for c in r[1:])]) + " |"
                     for r in AGREEMENT_ROWS)
    return AGREEMENT.format(rows=rows, reached=AGREEMENT_REACHED)


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
    return HEADER + "\n".join(rows) + "\n" + agreement_markdown() + "".join(section() for section in SECTIONS)
