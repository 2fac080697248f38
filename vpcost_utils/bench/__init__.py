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
5. The allocator: the same epochs of mapping and training (N=50, the mini profile's batch of 32) in a fresh
   process under glibc's malloc defaults and with freed memory kept (``allocator.py``, our default): wall,
   system time, minor page faults and peak RSS of each, and their ratios.
6. The label-mapping methods (issue #35): each method's seconds per training step through ``train.VPTask`` (its
   mapping pass spread over the epoch's steps, as in a run) and its ratio to ILM's (``bench/methods.py``).
7. The arithmetic pin (``cpu_pin.py``): the linear probe's feature pass, the VP step and the ILM mapping pass in a
   fresh process with no pin (``native``) and under the pin, CPU ms per image and the pinned / native ratio.

Images are random uint8 tensors (the speed of a frozen network does not depend on what it sees);
the default backbone is a randomly initialised ResNet-18 at a 224 canvas with 32-px inputs.
"""

from __future__ import annotations

import argparse

import torch

from .allocator_bench import allocator_lines
from .common import emit, load_model, note
from .methods import method_lines
from .packing import packing_lines
from .phases import phase_lines, switch_lines
from .pin_cost import pin_cost_lines
from .whole_run import final_accuracies, whole_run_lines

__all__ = ["allocator_lines", "final_accuracies", "main", "method_lines", "packing_lines", "phase_lines",
           "pin_cost_lines", "switch_lines", "whole_run_lines"]


def header(device: torch.device) -> None:
    note(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    note(f"torch: {torch.__version__}")
    emit("threads", torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpcost_utils.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a registry name, e.g. efficientnet_lite0/dense (default: --arch)")
    parser.add_argument("--arch", default="resnet18",
                        help="random-init architecture when no --model (resnet18; smallcnn: the smallest, 64 px)")
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
    parser.add_argument("--allocator-epochs", type=int, default=None,
                        help="epochs of the allocator section (4; quick 1)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["phases", "switches", "whole-run", "packing", "allocator", "methods", "pin"])
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
    if "allocator" not in args.skip and device.type == "cpu":  # glibc's malloc holds a CPU run's tensors only
        allocator_lines(args.model, args.arch, args.input_size, 50, args.allocator_epochs or (1 if args.quick else 4),
                        32, test_images)
    if "methods" not in args.skip:
        method_lines(model, device, args.input_size, epochs=epochs_timed, batch=args.batch if args.quick else 32,
                     repeats=repeats)
    if "pin" not in args.skip and device.type == "cpu":  # the pin is a CPU instruction-set level
        pin_cost_lines(args.model, args.arch, args.input_size, 32, 1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
