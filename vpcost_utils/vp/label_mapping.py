"""Label mapping: which source (ImageNet) logit stands for each target class.

A mapping is a length-K LongTensor ``m``: target class ``j`` reads source logit ``m[j]``, so
target logits are ``source_logits[:, m]`` and loss, argmax, softmax and every calibration metric
are computed over those K logits only (reference-algorithms.md, must-match 2).

- RLM: a seeded random injective mapping, fixed for the run.
- FLM: hard-argmax vote counts on the training set with the initial prompt, then the greedy
  one-to-one assignment; fixed for the run.
- ILM: the FLM routine again at the start of every epoch, epoch 0 included, with the current prompt.

Beyond the paper (issue #35), a mapping may also be a real matrix or a trainable layer; ``map_logits`` applies any:

- BLM (Cai et al., NeurIPS 2024, ``tmlr-group/BayesianLM`` ``mapping.py``): an [S, K] matrix ``w`` from the joint
  counts of the argmax source class and the true target class, ``c[s, t] / (sum_t c[s, t] + lambda)`` (Laplace
  smoothing per source class, lambda = 1), then each column divided by its sum. Target logits are
  ``source_logits @ w`` (the raw logits, not probabilities, exactly as the reference's ``torch.mm``).
- BLM+: the same, with ``c[s, t]`` the sum over class-t images of the softmax probability of s, kept only where s is
  among the image's top-k source classes (k = int(0.15 K), the reference's ``topk_ratio``; at least 1, see
  ``blmp_top_k``). Both are re-estimated at the start of every epoch from the same pass over the training images
  as ILM's vote.
- FullyMap (AutoVP, ICLR 2024, ``IBM/AutoVP`` ``Output_Mapping``): ``nn.Linear(S, K)`` on the source logits with
  PyTorch's default initialisation, trained with the prompt by the same optimizer at the same learning rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..errors import SpecError

MAPPING_METHODS = ("rlm", "flm", "ilm", "blm", "blm+", "fullymap")
#: Methods whose mapping is estimated again at the start of every epoch from one pass over the training images.
REVOTED_EVERY_EPOCH = ("ilm", "blm", "blm+")
#: The reference's defaults (``cfg.py`` ``config_vm``): Laplace factor 1 for both, BLM+'s top-k = 15 % of K.
BLM_LAPLACE = 1.0
BLMP_TOPK_RATIO = 0.15
#: A mapping as the training step applies it: an index [K] (RLM/FLM/ILM), a matrix [S, K] (BLM/BLM+) or a layer.
Mapping = torch.Tensor | nn.Module


def frequency_matrix(source_logits: torch.Tensor, targets: torch.Tensor, num_targets: int) -> torch.Tensor:
    """The [S, K] count matrix: entry (s, t) counts class-t samples whose argmax source class is s.

    The argmax is over all S source logits (hard votes, not probabilities), as the reference does.
    """
    if source_logits.ndim != 2 or len(source_logits) != len(targets):
        raise ValueError(f"need logits [N, S] and targets [N], got {tuple(source_logits.shape)} and "
                         f"{tuple(targets.shape)}")
    num_source = source_logits.shape[1]
    votes = source_logits.argmax(dim=1).to(torch.long).cpu()
    flat = votes * num_targets + targets.to(torch.long).cpu()
    return torch.bincount(flat, minlength=num_source * num_targets).view(num_source, num_targets)


def greedy_one_to_one(freq: torch.Tensor) -> torch.Tensor:
    """Greedy global-max assignment of one distinct source class to each target class.

    K times: take the first maximum of the matrix in row-major order (lowest source index, then
    lowest target index, exactly ``torch.argmax`` on the flattened matrix), assign it, and mark
    its row and column used with -1. Zero-count cells stay eligible (0 > -1), so targets nobody
    voted for get the lowest-index unused source classes, in target order, as in the reference.
    """
    if freq.ndim != 2:
        raise ValueError(f"need a [S, K] count matrix, got shape {tuple(freq.shape)}")
    num_source, num_targets = freq.shape
    if num_targets > num_source:
        raise SpecError(f"cannot map {num_targets} target classes one-to-one onto {num_source} source classes")
    work = freq.clone().to(torch.float64)
    mapping = torch.empty(num_targets, dtype=torch.long)
    for _ in range(num_targets):
        s, t = divmod(int(torch.argmax(work)), num_targets)
        mapping[t] = s
        work[s, :] = -1
        work[:, t] = -1
    return mapping


def random_mapping(num_source: int, num_targets: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """RLM: ``randperm(S)[:K]``, the reference's seeded random injective mapping."""
    if num_targets > num_source:
        raise SpecError(f"cannot map {num_targets} target classes one-to-one onto {num_source} source classes")
    return torch.randperm(num_source, generator=generator)[:num_targets]


@torch.no_grad()
def frequency_mapping(
    source_logits_fn: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_targets: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FLM over a training set: returns (mapping [K], count matrix [S, K]).

    ``source_logits_fn`` is the prompted frozen model (prompt then backbone) and ``batches``
    yields (images, labels). Every target class must occur, as the reference assumes.
    """
    freq = None
    for images, labels in batches:
        counts = frequency_matrix(source_logits_fn(images).float(), labels, num_targets)
        freq = counts if freq is None else freq + counts
    if freq is None:
        raise ValueError("frequency mapping needs at least one training batch")
    missing = (freq.sum(0) == 0).nonzero().flatten().tolist()
    if missing:
        raise SpecError(f"target classes {missing} have no training samples; every class must be present")
    return greedy_one_to_one(freq), freq


def blmp_top_k(num_targets: int, ratio: float = BLMP_TOPK_RATIO) -> int:
    """BLM+'s k: ``int(K * ratio)`` as the reference, but at least 1.

    The reference's ``int(10 * 0.15)`` is 1 and for K < 7 it is 0, where ``topk`` keeps nothing and every column
    sum is 0 (a NaN matrix); 1 is the nearest k that defines a mapping.
    """
    return max(1, int(num_targets * ratio))


def topk_probability_matrix(source_logits: torch.Tensor, targets: torch.Tensor, num_targets: int, k: int
                            ) -> torch.Tensor:
    """BLM+'s [S, K] sums (float64): entry (s, t) adds, over class-t samples, softmax probability of s where s is
    among the sample's top-k source classes (zero elsewhere)."""
    if source_logits.ndim != 2 or len(source_logits) != len(targets):
        raise ValueError(f"need logits [N, S] and targets [N], got {tuple(source_logits.shape)} and "
                         f"{tuple(targets.shape)}")
    # fp32 as the reference's softmax (a run's logits are fp32); float64 logits stay float64 (the tests' reference)
    logits = source_logits if source_logits.dtype == torch.float64 else source_logits.float()
    probs = logits.softmax(dim=1)
    values, indices = probs.topk(k, dim=1)
    kept = torch.zeros_like(probs).scatter_(1, indices, values).double().cpu()
    sums = torch.zeros(probs.shape[1], num_targets, dtype=torch.float64)
    # Summed in float64 so the batch split of the pass cannot change the matrix beyond rounding (the reference
    # sums in float32 over all samples at once).
    return sums.index_add_(1, targets.to(torch.long).cpu(), kept.t())


def bayesian_matrix(joint: torch.Tensor, laplace: float = BLM_LAPLACE) -> torch.Tensor:
    """BLM's normalisation of a [S, K] joint table: each row divided by (its sum + ``laplace``), then each column
    divided by its sum, so column t is a distribution over source classes. Float64; every column needs a sample."""
    joint = joint.to(torch.float64)
    empty = (joint.sum(0) == 0).nonzero().flatten().tolist()
    if empty:
        raise SpecError(f"target classes {empty} have no training samples; every class must be present")
    smoothed = joint / (joint.sum(dim=1, keepdim=True) + laplace)
    return smoothed / smoothed.sum(dim=0, keepdim=True)


def blm_matrix(source_logits: torch.Tensor, targets: torch.Tensor, num_targets: int, laplace: float = BLM_LAPLACE
               ) -> torch.Tensor:
    """BLM on one set of logits: argmax counts, then ``bayesian_matrix``."""
    return bayesian_matrix(frequency_matrix(source_logits, targets, num_targets), laplace)


def blmp_matrix(source_logits: torch.Tensor, targets: torch.Tensor, num_targets: int, k: int | None = None,
                laplace: float = BLM_LAPLACE) -> torch.Tensor:
    """BLM+ on one set of logits: top-k probability sums, then ``bayesian_matrix``."""
    k = blmp_top_k(num_targets) if k is None else k
    return bayesian_matrix(topk_probability_matrix(source_logits, targets, num_targets, k), laplace)


@torch.no_grad()
def estimate_mapping(method: str, source_logits_fn: Callable[[torch.Tensor], torch.Tensor],
                     batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_targets: int) -> torch.Tensor:
    """The mapping of a voted method from one pass over the training batches.

    flm / ilm: the one-to-one index [K]; blm / blm+: the float32 matrix [S, K] (float32 as the reference applies
    it; estimated in float64).
    """
    if method in ("flm", "ilm"):
        return frequency_mapping(source_logits_fn, batches, num_targets)[0]
    if method not in ("blm", "blm+"):
        raise SpecError(f"mapping method {method!r} is not estimated from the training set; "
                        f"estimated ones: flm, ilm, blm, blm+")
    k = blmp_top_k(num_targets)
    joint = None
    for images, labels in batches:
        logits = source_logits_fn(images).float()
        part = (frequency_matrix(logits, labels, num_targets).double() if method == "blm"
                else topk_probability_matrix(logits, labels, num_targets, k))
        joint = part if joint is None else joint + part
    if joint is None:
        raise ValueError(f"{method} mapping needs at least one training batch")
    return bayesian_matrix(joint).float()


def fully_connected_mapping(num_source: int, num_targets: int) -> nn.Linear:
    """FullyMap: AutoVP's ``nn.Linear(S, K)`` with PyTorch's default (seeded, global-RNG) initialisation."""
    return nn.Linear(num_source, num_targets)


def map_logits(source_logits: torch.Tensor, mapping: Mapping) -> torch.Tensor:
    """Target logits [N, K] from source logits [N, S] under any mapping kind."""
    if isinstance(mapping, nn.Module):
        return mapping(source_logits)
    if mapping.dtype.is_floating_point:
        return source_logits @ mapping
    return source_logits[:, mapping]


def dominant_sources(mapping: Mapping) -> torch.Tensor:
    """The source class each target class reads most: the index itself, a matrix column's argmax, or the largest
    weight of a linear layer's row. The plots and the ``mapped_source_classes`` of a record read this."""
    if isinstance(mapping, nn.Linear):
        return mapping.weight.detach().argmax(dim=1).cpu()
    if mapping.dtype.is_floating_point:
        return mapping.detach().argmax(dim=0).cpu()
    return mapping.detach().cpu()


def mapping_summary(mapping: Mapping, top: int = 20) -> dict | None:
    """A JSON-able record of a matrix or layer mapping (None for an index mapping, which the record holds whole).

    The whole matrix is S x K numbers (10k-100k per run, dense for FullyMap), more than every other field of a
    record together, and the test predictions already pin the run's outputs; what a reader needs is which source
    classes each target reads and how concentrated that is: per target class its ``top`` source classes with
    their weights, the weight mass they hold (BLM) and the matrix's non-zero count.
    """
    if isinstance(mapping, nn.Linear):
        weights, bias = mapping.weight.detach().cpu().t().double(), mapping.bias.detach().cpu().tolist()
    elif mapping.dtype.is_floating_point:
        weights, bias = mapping.detach().cpu().double(), None
    else:
        return None
    top = min(top, weights.shape[0])
    # A stable sort, so ties list the lowest source index first, as the argmax of ``dominant_sources`` picks it
    order = torch.sort(-weights, dim=0, stable=True).indices[:top]
    values, indices = weights.gather(0, order), order
    columns = [[[int(s), float(w)] for s, w in zip(indices[:, t], values[:, t], strict=True)]
               for t in range(weights.shape[1])]
    summary = {"shape": list(weights.shape), "nonzero": int((weights != 0).sum()), "top": columns}
    if bias is not None:
        summary["bias"] = bias
    else:
        summary["top_mass"] = values.sum(0).tolist()
    return summary
