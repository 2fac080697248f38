"""Temperature scaling (Guo et al., 2017): one scalar T that divides the logits, fitted by NLL.

Beyond the paper. The paper finds that sparse backbones give worse-calibrated prompted models; a
user who must ship one wants to know whether that cost is fixable after training. T is fitted on
labelled images that the prompt neither trained on nor is tested on (``RunSpec.holdout``), so the
after-scaling ECE on the test set is an honest estimate. Accuracy never changes (argmax is invariant).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, bounds: tuple[float, float] = (0.01, 100.0)
                    ) -> float:
    """The T in ``bounds`` that minimises the NLL of ``softmax(logits / T)`` on ``labels``.

    A bounded 1-D search on log T (scipy's Brent): the NLL is smooth and unimodal in log T, and a
    scalar search has no learning rate or iteration count to tune, unlike the usual LBFGS on T.
    """
    from scipy.optimize import minimize_scalar

    if len(logits) == 0:
        raise ValueError("cannot fit a temperature on zero images")
    logits = logits.detach().double().cpu()
    labels = labels.detach().long().cpu()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels))

    result = minimize_scalar(nll, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                             options={"xatol": 1e-5})
    return float(math.exp(result.x))
