"""One function per figure of the paper, drawn from the result table or the run records.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state, so it
is safe under Agg and papermill and leaks nothing across cells), never trains, and reads nothing
but its arguments. Conventions shared by all figures:

- Seeds: the line is the mean over seeds; the band is the 95 % Student-t interval of that mean
  (``spread="ci95"``, the default; the same ``intervals.t_interval`` the summary's paired gaps use),
  or the seeds' min-max range (``"minmax"``), or mean +- one standard deviation (``"std"``).
  A band is drawn only where 2+ seeds exist.
- N-shot axes are categorical in the paper's order 1, 2, 5, 10, 20, 50, 100, full (``None``).
- Accuracies are in percent; ECE, confidences and KL values are as the records store them.
- A model's compression level is parsed from its registry name by ``compression_level``.
- Correct statistics are the default; the paper-compatible ones (``ece_paper_logit``,
  ``kl_wrong_paper``) are drawn when asked for, in their own row, named as such.
"""

from ._common import (
    ARCH_TITLES,
    DATASET_TITLES,
    FAMILY_TITLES,
    METHOD_LABELS,
    METRIC_LABELS,
    PAPER_SHOT_LABELS,
    Family,
    compression_amount,
    compression_kind,
    compression_level,
    dataset_title,
    model_label,
    seed_stats,
    shot_label,
)
from .accuracy import (
    accuracy_vs_shots,
    delta_heatmap,
    delta_table,
    transfer_gap,
)
from .calibration import (
    confidence_vs_compression,
    ece_vs_compression,
    kl_vs_compression,
    reliability_diagram,
    stat_vs_compression,
    upstream_accuracy,
)
from .mapping_figures import (
    accuracy_curves,
    classwise_changes,
    classwise_delta,
    label_mapping_examples,
    loss_curves,
    prompt_distance,
    prompt_evolution,
    prompt_l2,
)

__all__ = [
    "ARCH_TITLES",
    "DATASET_TITLES",
    "FAMILY_TITLES",
    "Family",
    "METHOD_LABELS",
    "METRIC_LABELS",
    "PAPER_SHOT_LABELS",
    "accuracy_curves",
    "accuracy_vs_shots",
    "classwise_changes",
    "classwise_delta",
    "compression_amount",
    "compression_kind",
    "compression_level",
    "confidence_vs_compression",
    "dataset_title",
    "delta_heatmap",
    "delta_table",
    "ece_vs_compression",
    "kl_vs_compression",
    "label_mapping_examples",
    "loss_curves",
    "model_label",
    "prompt_distance",
    "prompt_evolution",
    "prompt_l2",
    "reliability_diagram",
    "seed_stats",
    "shot_label",
    "stat_vs_compression",
    "transfer_gap",
    "upstream_accuracy",
]
