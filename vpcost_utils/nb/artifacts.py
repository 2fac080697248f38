"""Every artifact of the paper, the notebook that makes it, and the files it writes.

The single source for ``outputs/<profile>/index.md`` and for the notebook tests' list of expected
files. Patterns are relative to ``outputs/<profile>/`` and may hold a glob ``*`` (one file per
family or dataset).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Artifact(NamedTuple):
    paper: str  # "Fig. 2, 21"
    what: str
    notebook: str
    files: tuple[str, ...]


NOTEBOOKS = ("01_sparse_transfer", "02_clip", "03_quantization", "04_cross_modal", "05_calibration",
             "06_label_mapping", "07_summary", "08_your_model")
#: The ``profiles`` section whose runs each notebook needs (the summary only reads them).
NOTEBOOK_SECTIONS = {"01_sparse_transfer": "sparse_transfer", "02_clip": "clip", "03_quantization": "quantization",
                     "04_cross_modal": "cross_modal", "05_calibration": "calibration",
                     "06_label_mapping": "label_mapping"}

ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("Table 5", "batch size per N-shot", "01_sparse_transfer", ("tables/table5_batch_sizes.csv",)),
    Artifact("Fig. 2, 21", "accuracy vs N-shot, GMP ResNet-18/34 vs dense", "01_sparse_transfer",
             ("figures/fig02_21_accuracy_*.png",)),
    Artifact("Fig. 3, 22", "accuracy vs N-shot, AC/DC ResNet-50 vs dense", "01_sparse_transfer",
             ("figures/fig03_22_accuracy_acdc.png",)),
    Artifact("Fig. 4, 23", "accuracy vs N-shot, RigL ResNet-50 vs dense", "01_sparse_transfer",
             ("figures/fig04_23_accuracy_rigl.png",)),
    Artifact("Fig. 14", "upstream top-1 vs remaining weights", "01_sparse_transfer",
             ("figures/fig14_upstream_accuracy.png",)),
    Artifact("Fig. 15, 16 (left)", "accuracy vs N-shot, dense vs the sparsest lottery ticket", "01_sparse_transfer",
             ("figures/fig15_16_accuracy_lt.png",)),
    Artifact("Fig. 15, 16 (right)", "Delta heat maps (dense - sparse) for ILM and FLM", "01_sparse_transfer",
             ("figures/fig15_16_delta_ilm.png", "figures/fig15_16_delta_flm.png")),
    Artifact("Fig. 17", "Delta heat maps for RLM", "01_sparse_transfer", ("figures/fig17_delta_rlm.png",)),
    Artifact("Table 2", "CLIP full-data accuracy, VP and ILM-VP, dense / 2x / 4x", "02_clip",
             ("tables/table2_clip_vp.csv",)),
    Artifact("Fig. 18", "CLIP accuracy vs N-shot", "02_clip", ("figures/fig18_clip_accuracy.png",)),
    Artifact("Fig. 5, 24 / 6, 25", "accuracy vs N-shot per bit width (DeiT-T, Swin-T)", "03_quantization",
             ("figures/fig05_06_accuracy_*.png",)),
    Artifact("Table 3", "cross-modal reprogramming accuracy, dense vs compressed", "04_cross_modal",
             ("tables/table3_cross_modal.csv",)),
    Artifact("Table 4", "cross-modal reprogramming accuracy per bit width", "04_cross_modal",
             ("tables/table4_cross_modal_quantized.csv",)),
    Artifact("Fig. 7", "ECE vs sparsity (full data)", "05_calibration", ("figures/fig07_ece_vs_sparsity.png",)),
    Artifact("Fig. 8, 9", "ECE vs bits (full data)", "05_calibration", ("figures/fig08_09_ece_vs_bits.png",)),
    Artifact("Fig. 10", "true-class confidence on correct samples vs bits", "05_calibration",
             ("figures/fig10_confidence_vs_bits.png",)),
    Artifact("Fig. 11", "KL to uniform on misclassified samples vs bits", "05_calibration",
             ("figures/fig11_kl_vs_bits.png",)),
    Artifact("Fig. 12", "true-class confidence vs sparsity", "05_calibration",
             ("figures/fig12_confidence_vs_sparsity.png",)),
    Artifact("Fig. 13", "KL to uniform vs sparsity", "05_calibration", ("figures/fig13_kl_vs_sparsity.png",)),
    Artifact("Fig. 1", "label mapping examples, dense vs compressed", "06_label_mapping",
             ("figures/fig01_label_mapping.png",)),
    Artifact("Fig. 19", "classes with the largest drops and gains", "06_label_mapping",
             ("figures/fig19_classwise_changes.png",)),
    Artifact("Fig. 20", "prompt evolution, prompt L2 distance, loss curves", "06_label_mapping",
             ("figures/fig20a_prompt_evolution.png", "figures/fig20b_prompt_distance.png",
              "figures/fig20c_loss_curves.png")),
    Artifact("Table 1", "performance drop per compression method, graded from the results", "07_summary",
             ("tables/table1_summary.csv",)),
    Artifact("Beyond the paper", "hidden-cost report: accuracy gap and calibration (with temperature scaling) of a "
             "dense model and its compressed versions", "08_your_model",
             ("report/*/report.html", "report/*/report.md", "figures/report_accuracy.png",
              "figures/report_ece_gap.png")),
)


#: Paper artifacts a profile cannot make, and why (shown in its index instead of "missing").
NOT_MADE: dict[str, dict[str, str]] = {
    "mini": {
        "Fig. 3, 22": "no AC/DC EfficientNet-Lite exists; the mini profile's sparse family is Fig. 2's panel",
        "Fig. 4, 23": "no RigL EfficientNet-Lite exists; the mini profile's sparse family is Fig. 2's panel",
        "Fig. 15, 16 (left)": "no lottery tickets of EfficientNet-Lite exist",
        "Fig. 15, 16 (right)": "no lottery tickets of EfficientNet-Lite exist",
        "Fig. 17": "no lottery tickets of EfficientNet-Lite exist",
    },
    # The quick profile's one sparse family is AC/DC ResNet-50 (Fig. 3); found by the quick rehearsal, where
    # `make reproduce PROFILE=quick` ended with "missing artifacts" (exit 3) after every notebook had passed.
    "quick": {
        "Fig. 2, 21": "the quick profile has no GMP ResNet-18/34 (its sparse family is AC/DC, Fig. 3)",
        "Fig. 4, 23": "the quick profile has no RigL ResNet-50 (its sparse family is AC/DC, Fig. 3)",
        "Fig. 15, 16 (left)": "the quick profile has no lottery tickets",
        "Fig. 15, 16 (right)": "the quick profile has no lottery tickets",
        "Fig. 17": "the quick profile has no lottery tickets",
    },
}


def made_by(profile: str) -> list[Artifact]:
    """The artifacts a profile makes (all but its ``NOT_MADE`` entries)."""
    skipped = NOT_MADE.get(profile, {})
    return [a for a in ARTIFACTS if a.paper not in skipped]


def missing_files(out: Path) -> list[str]:
    """Artifact patterns with no matching file under ``out`` (an ``outputs/<profile>`` folder)."""
    return [pattern for a in made_by(out.name) for pattern in a.files if not list(out.glob(pattern))]


def write_index(out: Path) -> Path:
    """Write ``out/index.md``: every paper artifact with links to the files that regenerate it."""
    lines = [f"# Outputs of the `{out.name}` profile", "",
             "Every table and figure of the paper, and the files this run generated for it.", "",
             "| paper | what | notebook | files |", "|---|---|---|---|"]
    for a in ARTIFACTS:
        found = sorted(p.relative_to(out).as_posix() for pattern in a.files for p in out.glob(pattern))
        not_made = NOT_MADE.get(out.name, {}).get(a.paper)
        links = "<br>".join(f"[{f}]({f})" for f in found) or (f"not made by this profile: {not_made}" if not_made
                                                               else "**missing**")
        lines.append(f"| {a.paper} | {a.what} | [{a.notebook}](executed/{a.notebook}.ipynb) | {links} |")
    path = out / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path
