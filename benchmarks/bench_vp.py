"""Benchmark: where the time of a few-shot VP run goes, ours vs the reference's structure.

Prints numbers; asserts nothing. Run with ``make benchmark`` (CPU here; pass ``--device cuda`` on a GPU).
1. Input pipeline: batches sliced from the decoded uint8 tensor (ours) vs a DataLoader that turns
   PIL images into tensors per sample every epoch (the reference's pipeline), images per second.
2. A whole VP run (ILM, N-shot) evaluated every epoch (reference) vs every 10 epochs (our default).
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision.transforms.functional as TF
from torch.utils.data import DataLoader, Dataset

from vpcost_utils.config import RunSpec
from vpcost_utils.data import load_split
from vpcost_utils.models import create_model
from vpcost_utils.train import batches, run_vp


class PILDataset(Dataset):
    """The reference's per-sample path: a PIL image through ToTensor on every access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = [TF.to_pil_image(img) for img in images]
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return TF.to_tensor(self.images[i]), self.labels[i]


def images_per_second(fn, n_images: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_images / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    split = load_split(args.dataset, "test")
    n = len(split)

    def ours():
        for x, _ in batches(split, 128, device):
            x.sum()

    def reference():
        for x, _ in DataLoader(PILDataset(split.images, split.labels), batch_size=128, num_workers=0):
            x.to(device).sum()

    reference_ds = PILDataset(split.images, split.labels)

    def reference_epoch():
        for x, _ in DataLoader(reference_ds, batch_size=128, num_workers=0):
            x.to(device).sum()

    a, b = images_per_second(ours, n), images_per_second(reference_epoch, n)
    print(f"input pipeline ({args.dataset}, {n} images, {split.input_size}px): tensor slices {a:,.0f} img/s, "
          f"PIL+ToTensor DataLoader {b:,.0f} img/s, ratio {a / b:.1f}x")

    model = create_model("smallcnn/dense", device=device)
    for eval_every in (1, 10):
        spec = RunSpec("smallcnn/dense", args.dataset, method="ilm", n_shots=10, epochs=args.epochs,
                       eval_every=eval_every)
        start = time.perf_counter()
        record = run_vp(spec, device=device, progress=False, model=model)
        print(f"ILM-VP {args.dataset} 10-shot, {args.epochs} epochs, eval_every={eval_every}: "
              f"{time.perf_counter() - start:.2f} s, acc {record['metrics']['acc']:.1f} %")


if __name__ == "__main__":
    main()
