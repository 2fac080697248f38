"""The reference protocol's VP loop, written the way the authors' code runs it (reference-algorithms.md §1):
PIL images through a ``DataLoader`` with ``ToTensor`` every epoch, the ILM vote and the whole test set every
epoch, fp32, the backbone in PyTorch's default memory format. The bench times it beside ours."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data import ImageSplit


class PILSplit(Dataset):
    """The reference's per-sample path: a PIL image from a uint8 array, then ToTensor, on every access
    (what torchvision's CIFAR-10 ``__getitem__`` does under the authors' ``transforms.ToTensor()``)."""

    def __init__(self, split: ImageSplit):
        self.arrays = split.images.permute(0, 2, 3, 1).numpy()
        self.labels = split.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return TF.to_tensor(Image.fromarray(self.arrays[i])), self.labels[i]


class EpochPermutation(Sampler[int]):
    """A fresh random permutation of the training set per epoch, one ``randperm`` from ``generator`` each.

    This is the authors' ``shuffle=True`` drawn from our seeded generator, so both loops see the same batches.
    (``RandomSampler`` would draw a second, empty permutation every epoch and fall out of step from epoch 2.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


class ReferencePrompt(nn.Module):
    """ILM-VP's expansive prompt as the authors wrote it: zero-pad, add sigmoid(program) * mask, normalise."""

    def __init__(self, canvas: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.l_pad, self.r_pad = (canvas - input_size + 1) // 2, (canvas - input_size) // 2
        mask = F.pad(torch.zeros(3, input_size, input_size), (self.l_pad, self.r_pad, self.l_pad, self.r_pad), value=1)
        self.register_buffer("mask", mask)
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.l_pad, self.r_pad, self.l_pad, self.r_pad), value=0)
        return (x + torch.sigmoid(self.program) * self.mask - self.mean) / self.std


def reference_mapping(network: nn.Module, prompt: nn.Module, loader: DataLoader, num_targets: int,
                      device: torch.device) -> torch.Tensor:
    """The reference's FLM routine: one-hot argmax votes summed per target class, then greedy row/column removal."""
    counts = None
    with torch.no_grad():
        for x, y in loader:
            fx = network(prompt(x.to(device))).float().cpu()
            votes = F.one_hot(fx.argmax(1), fx.shape[1]).T.float() @ F.one_hot(y, num_targets).float()
            counts = votes if counts is None else counts + votes
    mapping = torch.zeros(num_targets, dtype=torch.long)
    for _ in range(num_targets):
        s, t = divmod(int(counts.argmax()), num_targets)
        mapping[t] = s
        counts[s, :] = -1
        counts[:, t] = -1
    return mapping.to(device)


def reference_train_epoch(network: nn.Module, prompt: nn.Module, mapping: torch.Tensor, loader: DataLoader,
                          optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device) -> None:
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        # The authors train under CUDA fp16 autocast with a GradScaler; on a CPU both are off (fp32).
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(network(prompt(x))[:, mapping], y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def reference_test(network: nn.Module, prompt: nn.Module, mapping: torch.Tensor, loader: DataLoader,
                   device: torch.device) -> torch.Tensor:
    """Mapped fp32 test logits, batch by batch, as the reference's end-of-epoch evaluation."""
    out = []
    with torch.no_grad():
        for x, _ in loader:
            out.append(network(prompt(x.to(device)))[:, mapping].float().cpu())
    return torch.cat(out)
