"""A VPTask on a random frozen 2-layer backbone and 12 random 16-px images: one method's or prompt's training step
alone, in milliseconds (shared by the tests of the newer mappings and prompts)."""

from __future__ import annotations

import torch

from vpcost_utils.config import RunSpec
from vpcost_utils.data import ImageSplit
from vpcost_utils.vp import train_vp as train


def tiny_task(method: str = "ilm", prompt: str | None = None, mean: tuple[float, ...] = (0.5,) * 3,
              std: tuple[float, ...] = (0.5,) * 3) -> tuple[train.VPTask, torch.nn.Module, ImageSplit]:
    """(task, frozen backbone, training split) for a 32-px canvas, 50 source classes and 4 target classes."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(50))
    backbone(torch.zeros(1, 3, 32, 32))
    backbone.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    split = ImageSplit("t", "train", torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=g),
                       torch.arange(12) % 4, ["a", "b", "c", "d"])

    class Model:
        canvas_size, num_classes = 32, 50

    Model.mean, Model.std = mean, std
    spec = RunSpec("tiny", "t", method=method, epochs=2, eval_every=2, prompt=prompt)
    return train.VPTask(spec, Model(), backbone, split, split, torch.device("cpu"), "fp32", "fp32"), backbone, split
