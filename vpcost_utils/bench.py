"""The benchmark: ``python -m vpcost_utils.bench`` (``make benchmark``). Prints numbers, asserts nothing.

Every measurement is one ``name: value`` line (``<phase> ratio: value`` for ratios, each the quotient
of two lines printed just before it); lines starting with ``#`` say what was measured.

1. Phases at one batch size (default 128): images per second of our ILM mapping pass, training
   step and test pass (``train._frequency_mapping``, ``train.train_one_epoch``,
   ``train.source_logits``), each beside the bare frozen backbone forward / forward+backward on the
   same prompted batch.
2. Switches of the frozen backbone, each off and on: channels-last (vs contiguous), BatchNorm
   folded into the convs (``fold_batchnorm``), bf16 autocast (used on CUDA only: on a CPU it changes
   the logits beyond float rounding); on CUDA also ``cudnn.benchmark``; with ``--compile`` also
   ``torch.compile`` of the backbone.
3. A whole few-shot run (10 classes, 10 shots, ILM, 100 epochs, 10,000 test images) both ways in
   one process: ours with ``RunSpec`` defaults (the phase functions of ``run_vp``, batches sliced
   from uint8 tensors, evaluation every ``eval_every`` epochs) and a loop that follows the reference
   protocol (a PIL ``DataLoader`` with ``ToTensor`` every epoch, the ILM mapping and the full test
   set every epoch, fp32, the backbone in PyTorch's default memory format as the authors' code runs
   it). A whole run takes hours on a CPU, so each loop runs ``--epochs-timed`` epochs of mapping
   and training and one stretch of ``--test-images`` test images, and the rest is extrapolated per
   phase. Both loops start from the same seed and see the same batches in the same order, so the
   bench also prints how far their prompts and test predictions are apart after the timed epochs.
   ``run_vp`` folds BatchNorm into the convs of non-quantized backbones (``models.fold``); with
   ``--fold-bn`` (on) a third loop times ours without that folding, for comparison.
4. ``--packing``: K runs' prompted batches in one backbone forward+backward vs K separate steps.

Images are random uint8 tensors (the speed of a frozen network does not depend on what it sees);
the default backbone is a randomly initialised ResNet-18 at a 224 canvas with 32-px inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from . import train as vp
from .config import RunSpec
from .data import ImageSplit
from .models import SourceModel, create_model
from .models.fold import fold_batchnorm
from .plan import evaluations
from .prompts import ExpansivePrompt

NUM_CLASSES, SHOTS, TEST_IMAGES = 10, 10, 10_000  # the whole run (CIFAR-10-sized test set)
REFERENCE_TEST_BATCH = 128  # the authors' VP test loaders


# ---------------------------------------------------------------------------------------------- output

def emit(name: str, value: float) -> float:
    """Print one measured line; six significant digits so printed ratios recompute from printed parts."""
    print(f"{name}: {value:.6g}", flush=True)
    return float(f"{value:.6g}")


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def emit_ratio(name: str, numerator: tuple[str, float], denominator: tuple[str, float]) -> float:
    """``<name> ratio: a / b`` of two lines already printed, given as (name, value); says which in a comment."""
    note(f"{name} ratio = {numerator[0]} / {denominator[0]}")
    return emit(f"{name} ratio", numerator[1] / denominator[1])


# ---------------------------------------------------------------------------------------------- setup

def random_split(n: int, input_size: int, num_classes: int = NUM_CLASSES, seed: int = 0) -> ImageSplit:
    """``n`` random uint8 images with balanced labels (every class present once ``n >= num_classes``)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, input_size, input_size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    return ImageSplit("bench", "random", images, labels, [str(c) for c in range(num_classes)])


def random_model(arch: str) -> SourceModel:
    """A randomly initialised ImageNet architecture (no weights needed), frozen."""
    from .plan import _random_model

    module = _random_model(arch).eval().requires_grad_(False)
    return SourceModel(f"{arch}/random-init", module, provenance={"name": f"{arch}/random-init"})


def load_model(model: str | None, arch: str, device: torch.device) -> SourceModel:
    if model:
        return create_model(model, substitute=True, device=device)
    return random_model(arch).to(device)


def our_backbone(model: SourceModel, device: torch.device) -> nn.Module:
    """The frozen backbone as ``run_vp`` prepares it (channels-last)."""
    return model.module.to(device, memory_format=torch.channels_last)


def reference_backbone(model: SourceModel, device: torch.device) -> nn.Module:
    """A copy in PyTorch's default (contiguous) memory format, as the authors' code runs it."""
    return copy.deepcopy(model.module).to(device, memory_format=torch.contiguous_format)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` rounds after one warm-up call each.

    The functions are interleaved round by round, so load from other processes hits all of them alike.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


# ---------------------------------------------------------------------------------------------- 1. phases

def phase_lines(model: SourceModel, device: torch.device, batch: int, input_size: int, repeats: int
                ) -> dict[str, float]:
    """Our three phases at ``batch`` images beside the bare backbone on the same prompted batch."""
    backbone = our_backbone(model, device)
    split = random_split(batch, input_size)
    prompt = ExpansivePrompt(model.canvas_size, input_size, model.mean, model.std).to(device)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    mapping = torch.arange(split.num_classes, device=device)
    with torch.no_grad():
        canvas = prompt(split.images.to(device).float().div(255))

    def bare_forward() -> None:
        with torch.inference_mode():
            backbone(canvas)

    def bare_train() -> None:
        x = canvas.detach().requires_grad_(True)
        backbone(x)[:, mapping].sum().backward()

    t = best_seconds({
        "mapping": lambda: vp._frequency_mapping(backbone, prompt, split, device),
        "forward": bare_forward,
        "train": lambda: vp.train_one_epoch(backbone, prompt, mapping, split, optimizer, batch, device, generator),
        "forward+backward": bare_train,
        "test": lambda: vp.source_logits(backbone, prompt, split, device),
    }, repeats, device)
    ips = {k: batch / v for k, v in t.items()}
    note(f"phases: {batch} images per call, best of {repeats} (interleaved), images/s")
    names = {"forward": "backbone forward images/s", "forward+backward": "backbone forward+backward images/s",
             "mapping": "mapping pass images/s", "train": "training step images/s", "test": "test pass images/s"}
    out = {k: emit(names[k], ips[k]) for k in names}
    for phase, bare in (("mapping", "forward"), ("train", "forward+backward"), ("test", "forward")):
        emit_ratio(f"{names[phase].removesuffix(' images/s')} vs {names[bare].removesuffix(' images/s')}",
                   (names[phase], out[phase]), (names[bare], out[bare]))
    return out


# ---------------------------------------------------------------------------------------------- 2. switches

def _steps(backbone: nn.Module, canvas: torch.Tensor, bf16: bool = False, cudnn_benchmark: bool | None = None
           ) -> dict[str, Callable[[], None]]:
    """The forward and forward+backward (input gradient) calls of ``backbone`` on ``canvas``."""

    @contextlib.contextmanager
    def settings():
        previous = torch.backends.cudnn.benchmark
        if cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = cudnn_benchmark
        try:
            with torch.autocast(canvas.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                yield
        finally:
            torch.backends.cudnn.benchmark = previous

    def forward() -> None:
        with torch.inference_mode(), settings():
            backbone(canvas)

    def forward_backward() -> None:
        x = canvas.detach().requires_grad_(True)
        with settings():
            y = backbone(x)
        y.float().sum().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def _compare(lines: dict[str, float], switch: str, off: str, on: str) -> None:
    """The ratio lines of one switch, from images/s lines already printed (keys '<label> <phase>')."""
    for phase in ("forward", "forward+backward"):
        emit_ratio(f"{switch} {phase}", (f"{on} {phase} images/s", lines[f"{on} {phase}"]),
                   (f"{off} {phase} images/s", lines[f"{off} {phase}"]))


def switch_lines(model: SourceModel, device: torch.device, batch: int, repeats: int, compile_backbone: bool) -> None:
    """Each runtime switch of the frozen backbone, off and on, all variants interleaved in one measurement."""
    canvas = torch.randn(batch, 3, model.canvas_size, model.canvas_size, device=device)
    fast = our_backbone(model, device)
    variants = {"contiguous": _steps(reference_backbone(model, device), canvas),
                "channels_last": _steps(fast, canvas),
                "BatchNorm folded": _steps(fold_batchnorm(fast).to(device, memory_format=torch.channels_last), canvas),
                "channels_last bf16": _steps(fast, canvas, bf16=True)}
    cuda = device.type == "cuda"  # our loop trains under bf16 autocast on CUDA only (train._autocast)
    if cuda:
        variants["channels_last bf16"] = _steps(fast, canvas, bf16=True, cudnn_benchmark=False)
        variants["cudnn.benchmark bf16"] = _steps(fast, canvas, bf16=True, cudnn_benchmark=True)
    if compile_backbone:
        compiled = _steps(torch.compile(fast), canvas, bf16=cuda)
        seconds, _ = timed(lambda: [fn() for fn in compiled.values()], device)
        emit("torch.compile first calls s", seconds)  # compiling both graphs, paid once per backbone
        variants["compiled"] = compiled
    fns = {f"{label} {phase}": fn for label, steps in variants.items() for phase, fn in steps.items()}
    note(f"switches: {batch} images per call, best of {repeats}, all variants interleaved, images/s")
    lines = {k: emit(f"{k} images/s", batch / t) for k, t in best_seconds(fns, repeats, device).items()}
    _compare(lines, "channels_last", "contiguous", "channels_last")
    _compare(lines, "BatchNorm folded", "channels_last", "BatchNorm folded")
    _compare(lines, "bf16 autocast", "channels_last", "channels_last bf16")
    if cuda:
        _compare(lines, "cudnn.benchmark", "channels_last bf16", "cudnn.benchmark bf16")
    else:
        note("bf16 on a CPU changes logits beyond float rounding, so our CPU runs stay fp32 (measured for "
             "information); cudnn.benchmark: CUDA only")
    if compile_backbone:
        _compare(lines, "torch.compile", "channels_last bf16" if cuda else "channels_last", "compiled")


# ---------------------------------------------------------------------------------------------- 3. whole run

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


@dataclass
class Loop:
    """One VP run in progress (ours or the reference's), so its phases can be timed one by one."""

    prompt: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    mapping: torch.Tensor | None = None


def _new_loop(prompt: nn.Module, epochs: int, lr: float, seed: int) -> Loop:
    optimizer = torch.optim.Adam(prompt.parameters(), lr=lr)
    milestones = [max(1, int(0.5 * epochs)), max(1, int(0.72 * epochs))]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return Loop(prompt, optimizer, scheduler, torch.Generator().manual_seed(seed))


class Ours:
    """Our run, step by step, exactly as ``run_vp`` calls the phase functions."""

    def __init__(self, model: SourceModel, train: ImageSplit, spec: RunSpec, device: torch.device,
                 fold_bn: bool = True):
        backbone, _ = vp.prepare_backbone(model, device, quantized=False, fold=fold_bn)
        self.backbone, self.train, self.spec, self.device = backbone, train, spec, device
        vp.set_seed(spec.seed)
        prompt = ExpansivePrompt(model.canvas_size, train.input_size, model.mean, model.std).to(device)
        self.loop = _new_loop(prompt, spec.epochs, spec.effective_lr, spec.seed)

    def mapping_pass(self) -> None:
        self.loop.mapping = vp._frequency_mapping(self.backbone, self.loop.prompt, self.train, self.device)

    def train_epoch(self) -> None:
        vp.train_one_epoch(self.backbone, self.loop.prompt, self.loop.mapping, self.train, self.loop.optimizer,
                           self.spec.effective_batch_size, self.device, self.loop.generator)
        self.loop.scheduler.step()

    def test_logits(self, test: ImageSplit) -> torch.Tensor:
        return vp.source_logits(self.backbone, self.loop.prompt, test, self.device)[:, self.loop.mapping.cpu()]


class Reference:
    """The reference protocol's run, step by step (same seed, same batch order as ours)."""

    def __init__(self, model: SourceModel, train: ImageSplit, spec: RunSpec, device: torch.device):
        self.network, self.spec, self.device = reference_backbone(model, device), spec, device
        vp.set_seed(spec.seed)
        prompt = ReferencePrompt(model.canvas_size, train.input_size, model.mean, model.std).to(device)
        self.loop = _new_loop(prompt, spec.epochs, spec.effective_lr, spec.seed)
        self.num_targets = train.num_classes
        dataset = PILSplit(train)
        # The authors' shuffled train loader, its permutations drawn from our seeded generator as ours are.
        self.train_loader = DataLoader(dataset, batch_size=spec.effective_batch_size,
                                       sampler=EpochPermutation(len(dataset), self.loop.generator))
        self.mapping_loader = DataLoader(dataset, batch_size=spec.effective_batch_size)
        self.scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def mapping_pass(self) -> None:
        # The authors run the vote over their shuffled train loader; the order changes nothing but would
        # consume the shared generator, so it reads the same images unshuffled here.
        self.loop.mapping = reference_mapping(self.network, self.loop.prompt, self.mapping_loader, self.num_targets,
                                              self.device)

    def train_epoch(self) -> None:
        reference_train_epoch(self.network, self.loop.prompt, self.loop.mapping, self.train_loader,
                              self.loop.optimizer, self.scaler, self.device)
        self.loop.scheduler.step()

    def test_logits(self, test: ImageSplit) -> torch.Tensor:
        loader = DataLoader(PILSplit(test), batch_size=REFERENCE_TEST_BATCH)
        return reference_test(self.network, self.loop.prompt, self.loop.mapping, loader, self.device)


UNFOLDED = "ours without BatchNorm folding"


def run_both(model: SourceModel, train: ImageSplit, test: ImageSplit, spec: RunSpec, device: torch.device,
             epochs: int, fold_bn: bool = False) -> dict[str, dict]:
    """``epochs`` epochs of each loop, then one test pass each; per-phase seconds, test logits, prompts.

    The loops take turns phase by phase, so a change of load from other processes hits them alike. With
    ``fold_bn`` a third loop runs ours without BatchNorm folding (``run_vp`` folds by default).
    """
    runs = {"ours": Ours(model, train, spec, device), "reference": Reference(model, train, spec, device)}
    if fold_bn:
        runs[UNFOLDED] = Ours(model, train, spec, device, fold_bn=False)
    out: dict[str, dict] = {name: {"mapping_s": [], "train_s": []} for name in runs}
    for _ in range(epochs):
        for phase in ("mapping", "train"):
            for name, run in runs.items():
                step = run.mapping_pass if phase == "mapping" else run.train_epoch
                out[name][f"{phase}_s"].append(timed(step, device)[0])
    # The test passes take turns too, one chunk of the test images at a time.
    chunk = max(vp.EVAL_BATCH, REFERENCE_TEST_BATCH)
    for name in runs:
        out[name]["test_s"], out[name]["logits"] = 0.0, []
    for start in range(0, len(test), chunk):
        part = test.subset(torch.arange(start, min(start + chunk, len(test))))
        for name, run in runs.items():
            seconds, logits = timed(lambda run=run, part=part: run.test_logits(part), device)
            out[name]["test_s"] += seconds
            out[name]["logits"].append(logits)
    for name, run in runs.items():
        out[name]["logits"] = torch.cat(out[name]["logits"])
        theta = run.loop.prompt.program if name == "reference" else run.loop.prompt.theta
        out[name]["frame"] = torch.sigmoid(theta).detach().cpu()
        out[name]["mapping"] = run.loop.mapping.cpu()
    return out


def whole_run_lines(model: SourceModel, device: torch.device, input_size: int, epochs_timed: int, test_images: int,
                    test_total: int = TEST_IMAGES, fold_bn: bool = True) -> float:
    """Time the loops for a few epochs and ``test_images`` test images; extrapolate to the whole run."""
    spec = RunSpec("bench/random", "bench/random", method="ilm", n_shots=SHOTS)
    train = random_split(NUM_CLASSES * SHOTS, input_size, seed=1)
    test = random_split(min(test_images, test_total), input_size, seed=2)
    # One untimed epoch of each loop on 10 images first: the first calls of a backbone pay one-off set-up costs.
    tiny = random_split(NUM_CLASSES, input_size, seed=3)
    run_both(model, tiny, tiny, spec, device, 1, fold_bn)
    res = run_both(model, train, test, spec, device, epochs_timed, fold_bn)
    epochs, n_evals = spec.epochs, evaluations(spec.epochs, spec.eval_every)
    note(f"whole run: ILM, {NUM_CLASSES} classes x {SHOTS} shots (batch {spec.effective_batch_size}), "
         f"{epochs} epochs, {test_total} test images; ours evaluates {n_evals} times (eval_every="
         f"{spec.eval_every}), the reference {epochs} times")
    note(f"timed: {epochs_timed} epoch(s) of mapping + training and {len(test)} test images of each loop; "
         f"extrapolated: the other {epochs - epochs_timed} epochs and the rest of the test passes, per phase")
    totals = {}
    for name, r in res.items():
        evals = epochs if name == "reference" else n_evals
        mapping_s = emit(f"{name} mapping pass s/epoch", float(np.mean(r["mapping_s"])))
        train_s = emit(f"{name} training s/epoch", float(np.mean(r["train_s"])))
        test_s = emit(f"{name} test pass s/evaluation", r["test_s"] * test_total / len(test))
        emit(f"{name} test images/s", len(test) / r["test_s"])
        totals[name] = emit(f"{name} whole run s (extrapolated)", epochs * (mapping_s + train_s) + evals * test_s)
    reference = ("reference whole run s (extrapolated)", totals["reference"])
    ratio = emit_ratio("whole run speedup vs reference protocol", reference,
                       ("ours whole run s (extrapolated)", totals["ours"]))
    if fold_bn:
        emit_ratio("whole run speedup without BatchNorm folding vs reference protocol", reference,
                   (f"{UNFOLDED} whole run s (extrapolated)", totals[UNFOLDED]))
    note(f"same seed, same batches: after {epochs_timed} epoch(s) the loops should agree to float rounding")
    ref = res["reference"]
    for name, r in res.items():
        if name != "reference":
            emit(f"{name} vs reference prompt max abs difference", float((r["frame"] - ref["frame"]).abs().max()))
            emit(f"{name} vs reference mapping agreement %", _percent_equal(r["mapping"], ref["mapping"]))
            emit(f"{name} vs reference test predictions agreeing %",
                 _percent_equal(r["logits"].argmax(1), ref["logits"].argmax(1)))
        emit(f"{name} test accuracy %", accuracy(r["logits"], test.labels))
    return ratio


def _percent_equal(a: torch.Tensor, b: torch.Tensor) -> float:
    return 100 * float((a == b).double().mean())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return _percent_equal(logits.argmax(1), labels)


def final_accuracies(model: SourceModel, train: ImageSplit, test: ImageSplit, spec: RunSpec,
                     device: torch.device) -> tuple[float, float, float]:
    """A whole run both ways, start to end: (our final acc %, the reference's final acc %, max |logit diff|).

    Ours is ``run_vp``'s sequence of calls; the reference evaluates every epoch (only the last counts here).
    """
    accs, logits = [], []
    for cls in (Ours, Reference):
        run = cls(model, train, spec, device)
        for epoch in range(spec.epochs):
            if spec.method == "ilm" or epoch == 0:
                run.mapping_pass()
            run.train_epoch()
            if cls is Reference or (epoch + 1) % spec.eval_every == 0 or epoch + 1 == spec.epochs:
                final = run.test_logits(test)
        accs.append(accuracy(final, test.labels))
        logits.append(final)
    return accs[0], accs[1], float((logits[0] - logits[1]).abs().max())


# ---------------------------------------------------------------------------------------------- 4. packing

def _packing_steps(backbone: nn.Module, prompts: list[ExpansivePrompt], optimizers: list[torch.optim.Optimizer],
                   mapping: torch.Tensor, xs: list[torch.Tensor], ys: list[torch.Tensor]
                   ) -> tuple[Callable[[], None], Callable[[], None]]:
    """(K separate training steps, one packed step) for K runs' batches ``xs``/``ys``."""

    def separate() -> None:
        for p, opt, x, y in zip(prompts, optimizers, xs, ys, strict=True):
            loss = F.cross_entropy(backbone(p(x))[:, mapping], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def packed() -> None:
        logits = backbone(torch.cat([p(x) for p, x in zip(prompts, xs, strict=True)]))[:, mapping]
        # Sum of per-run mean losses: each prompt gets exactly its own run's gradient.
        loss = sum(F.cross_entropy(chunk, y) for chunk, y in zip(logits.split([len(y) for y in ys]), ys, strict=True))
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()

    return separate, packed


def packing_lines(model: SourceModel, device: torch.device, input_size: int, runs: int, repeats: int,
                  batch_sizes: tuple[tuple[str, int], ...] = (("1-shot", 8), ("10-shot", 32))) -> dict[str, float]:
    """K runs sharing one frozen backbone: K separate training steps vs one step on the K batches concatenated.

    The packed step is exact: the backbone is frozen and in eval mode (no cross-sample statistics), so each
    prompt's gradient is the one its own step would get. Only the speed is measured here.
    """
    backbone = our_backbone(model, device)
    prompts = [ExpansivePrompt(model.canvas_size, input_size, model.mean, model.std).to(device) for _ in range(runs)]
    optimizers = [torch.optim.Adam(p.parameters(), lr=0.01) for p in prompts]
    mapping = torch.arange(NUM_CLASSES, device=device)
    out = {}
    note(f"packing: {runs} runs, one training step each, best of {repeats}, images/s")
    for label, batch in batch_sizes:
        splits = [random_split(batch, input_size, seed=10 + k) for k in range(runs)]
        xs = [s.images.to(device).float().div(255) for s in splits]
        ys = [s.labels.to(device) for s in splits]
        separate, packed = _packing_steps(backbone, prompts, optimizers, mapping, xs, ys)
        t = best_seconds({"separate": separate, "packed": packed}, repeats, device)
        names = (f"packing {label} separate steps images/s", f"packing {label} packed step images/s")
        a = emit(names[0], runs * batch / t["separate"])
        b = emit(names[1], runs * batch / t["packed"])
        out[label] = emit_ratio(f"packing {label} ({runs} runs x batch {batch}) speedup", (names[1], b), (names[0], a))
    return out


# ---------------------------------------------------------------------------------------------- main

def header(device: torch.device) -> None:
    note(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    note(f"torch: {torch.__version__}")
    emit("threads", torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpcost_utils.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a registry name, e.g. efficientnet_lite0/dense (default: --arch)")
    parser.add_argument("--arch", default="resnet18", help="random-init architecture when no --model (resnet18)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--input-size", type=int, default=32, help="the images' size inside the canvas (32)")
    parser.add_argument("--batch", type=int, default=128, help="batch size of the phase lines (128)")
    parser.add_argument("--epochs-timed", type=int, default=None, help="epochs of each loop timed (3; quick 1)")
    parser.add_argument("--test-images", type=int, default=None, help="test images timed per loop (1024; quick 256)")
    parser.add_argument("--repeats", type=int, default=None, help="best-of rounds per measurement (3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="a short run: batch 32, fewer epochs and images")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the backbone")
    parser.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the whole run without BatchNorm folding, as before it was the default (on)")
    parser.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True,
                        help="the few-shot packing experiment (on)")
    parser.add_argument("--packing-runs", type=int, default=None, help="runs stepped together (4; quick 2)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["phases", "switches", "whole-run", "packing"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        args.batch = min(args.batch, 32)
    epochs_timed = args.epochs_timed or (1 if args.quick else 3)
    test_images = args.test_images or (256 if args.quick else 1024)
    repeats = args.repeats or (1 if args.quick else 3)
    torch.manual_seed(0)
    model = load_model(args.model, args.arch, device)

    header(device)
    substitute = model.provenance.get("substitute")
    note(f"model: {model.provenance.get('name', model.name)}" + (f" (substitute: {substitute})" if substitute else "")
         + f", canvas {model.canvas_size}, inputs {args.input_size} px")
    if "phases" not in args.skip:
        phase_lines(model, device, args.batch, args.input_size, repeats)
    if "switches" not in args.skip:
        switch_lines(model, device, args.batch, repeats, args.compile)
    if "whole-run" not in args.skip:
        whole_run_lines(model, device, args.input_size, epochs_timed, test_images, fold_bn=args.fold_bn)
    if args.packing and "packing" not in args.skip:
        packing_lines(model, device, args.input_size, args.packing_runs or (2 if args.quick else 4), max(repeats, 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
