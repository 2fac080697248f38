"""Accuracy and calibration statistics over the K mapped logits.

Contract: ``logits`` is ``[N, K]`` over the target classes (after label mapping), ``probs`` is its
softmax, ``targets`` is ``[N]`` in ``0..K-1``. Every function is pure and works on CPU tensors.

Correct by default, paper-compatible beside it (reference-algorithms.md §1g, §4):
- ``ece``: Guo et al. top-label ECE, 15 equal-width bins, (lo, hi] bins, plug-in L1 estimator,
  over softmax probabilities of the whole test set. Equal to ``calibration.get_ece(probs, y)``.
  torchmetrics 1.9 differs only when a confidence is exactly 1.0 (it opens an extra bin).
- ``paper_logit_ece``: what the authors logged as "ECE": the same estimator applied to the raw
  mapped LOGITS per test batch, summed over batches and divided by the number of test samples.
  Its scale depends on the test batch size; it is not a calibration error.
- ``kl_uniform_paper``: the paper's KL statistic, ``F.kl_div(log p, uniform)`` with the default
  mean reduction, i.e. KL(U || p) / K. ``kl_p_uniform`` is the proper KL(p || U).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _bin_index(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    # (lo, hi] bins: a confidence equal to an edge belongs to the bin below it; 0 goes to the first
    # bin and values above 1 (raw logits in the paper-compatible ECE) to the last, as the
    # calibration library the authors used does.
    upper_edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:]
    index = torch.searchsorted(upper_edges, confidence.to(torch.float64).contiguous(), right=False)
    return index.clamp_(max=n_bins - 1)


def reliability(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> dict[str, list[float]]:
    """Per-bin count, mean confidence and accuracy of the top-label prediction (reliability diagram)."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).to(torch.float64)
    index = _bin_index(confidence, n_bins)
    count = torch.bincount(index, minlength=n_bins).to(torch.float64)
    conf_sum = torch.bincount(index, weights=confidence.to(torch.float64), minlength=n_bins)
    acc_sum = torch.bincount(index, weights=correct, minlength=n_bins)
    safe = count.clamp(min=1)
    return {
        "bin_upper": torch.linspace(0, 1, n_bins + 1)[1:].tolist(),
        "count": count.tolist(),
        "confidence": (conf_sum / safe).tolist(),
        "accuracy": (acc_sum / safe).tolist(),
    }


def ece(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Top-label expected calibration error: sum over bins of (n_b / N) * |acc_b - conf_b|."""
    if len(probs) == 0:
        raise ValueError("ECE of an empty set is undefined")
    stats = reliability(probs, targets, n_bins)
    count = torch.tensor(stats["count"], dtype=torch.float64)
    accuracy = torch.tensor(stats["accuracy"], dtype=torch.float64)
    gap = (accuracy - torch.tensor(stats["confidence"], dtype=torch.float64)).abs()
    return float((count * gap).sum() / count.sum())


def paper_logit_ece(logits: torch.Tensor, targets: torch.Tensor, batch_size: int = 128, n_bins: int = 15) -> float:
    """The authors' logged "ECE": per-batch ECE of raw logits, summed, divided by N (not a calibration error)."""
    total = sum(ece(logits[i:i + batch_size], targets[i:i + batch_size], n_bins)
                for i in range(0, len(logits), batch_size))
    return float(total / len(logits))


def kl_uniform_paper(probs: torch.Tensor) -> torch.Tensor:
    """Per sample ``F.kl_div(log p, U, reduction='mean')`` = KL(U || p) / K, the paper's statistic."""
    k = probs.shape[1]
    uniform = torch.full_like(probs, 1.0 / k)
    return F.kl_div(probs.clamp_min(1e-12).log(), uniform, reduction="none").mean(dim=1)


def kl_p_uniform(probs: torch.Tensor) -> torch.Tensor:
    """Per sample KL(p || U) = sum p log p + log K: how far the prediction is from uniform."""
    p = probs.clamp_min(1e-12)
    return (probs * p.log()).sum(dim=1) + math.log(probs.shape[1])


def per_class_accuracy(predicted: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float]:
    """Accuracy (%) per target class; NaN for a class with no test sample."""
    hits = torch.bincount(targets[predicted == targets], minlength=num_classes).to(torch.float64)
    total = torch.bincount(targets, minlength=num_classes).to(torch.float64)
    return (100 * hits / total).tolist()


def _mean(x: torch.Tensor) -> float:
    return float(x.mean()) if len(x) else float("nan")


def summarize(logits: torch.Tensor, targets: torch.Tensor, *, paper_batch_size: int = 128,
              n_bins: int = 15) -> dict[str, object]:
    """Every statistic of one evaluation, as the result record stores it.

    Accuracies are in percent; ECE and confidences are fractions. ``paper_batch_size`` is the
    test batch size the authors' "ECE" was computed with (128; 64 for OxfordPets).
    """
    logits = logits.detach().float().cpu()
    targets = targets.detach().long().cpu()
    probs = logits.softmax(dim=1)
    predicted = probs.argmax(dim=1)
    correct = predicted == targets
    return {
        "acc": 100 * float(correct.double().mean()),
        "ece": ece(probs, targets, n_bins),
        "ece_paper_logit": paper_logit_ece(logits, targets, paper_batch_size, n_bins),
        "nll": float(F.cross_entropy(logits, targets)),
        "conf_correct": _mean(probs[correct, :].gather(1, targets[correct, None]).flatten()),
        "conf_wrong_true": _mean(probs[~correct, :].gather(1, targets[~correct, None]).flatten()),
        "kl_wrong_paper": _mean(kl_uniform_paper(probs[~correct])),
        "kl_wrong_p_uniform": _mean(kl_p_uniform(probs[~correct])),
        "kl_correct_paper": _mean(kl_uniform_paper(probs[correct])),
        "per_class_acc": per_class_accuracy(predicted, targets, logits.shape[1]),
        "reliability": reliability(probs, targets, n_bins),
    }


def encode_predictions(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, object]:
    """Per test image: predicted class, top-label confidence and label, compact enough for every record.

    The interval of a paired gap counts the finite test set as a source of noise (``stats/intervals.py``); that
    needs each image's outcome, not only the accuracy. int16 classes and float16 confidences, base64 of the
    little-endian bytes: about 8 bytes per image.
    """
    import base64

    import numpy as np

    probs = logits.detach().float().cpu().softmax(dim=1)
    confidence, predicted = probs.max(dim=1)

    def pack(array: np.ndarray, dtype: str) -> str:
        return base64.b64encode(array.astype(dtype).tobytes()).decode("ascii")

    return {"encoding": "base64 little-endian: pred <i2, conf <f2, label <i2",
            "pred": pack(predicted.numpy(), "<i2"), "conf": pack(confidence.numpy(), "<f2"),
            "label": pack(targets.detach().cpu().numpy(), "<i2")}


def decode_predictions(encoded: dict[str, object]) -> dict[str, object]:
    """``encode_predictions`` back to numpy arrays: ``pred``, ``conf`` (float32), ``label``, ``correct``."""
    import base64

    import numpy as np

    def unpack(key: str, dtype: str) -> np.ndarray:
        return np.frombuffer(base64.b64decode(str(encoded[key])), dtype=dtype)

    pred, label = unpack("pred", "<i2").astype(np.int64), unpack("label", "<i2").astype(np.int64)
    return {"pred": pred, "conf": unpack("conf", "<f2").astype(np.float32), "label": label,
            "correct": pred == label}
