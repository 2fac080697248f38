"""Label mapping: which source (ImageNet) logit stands for each target class.

A mapping is a length-K LongTensor ``m``: target class ``j`` reads source logit ``m[j]``, so
target logits are ``source_logits[:, m]`` and loss, argmax, softmax and every calibration metric
are computed over those K logits only (reference-algorithms.md, must-match 2).

- RLM: a seeded random injective mapping, fixed for the run.
- FLM: hard-argmax vote counts on the training set with the initial prompt, then the greedy
  one-to-one assignment; fixed for the run.
- ILM: the FLM routine again at the start of every epoch, epoch 0 included, with the current prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..errors import SpecError

MAPPING_METHODS = ("rlm", "flm", "ilm")


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
