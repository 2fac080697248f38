"""What a grid costs before it runs: ``python -m vpcost_utils.running.plan --profile paper``.

For every run of a profile (or any list of specs) it counts the image passes of each phase:

- ``train``: forward + backward through the frozen backbone (the prompt's gradient), one per
  training example per step, over the steps the run's ``loop.Schedule`` takes (``max_steps`` can end
  it mid-epoch);
- ``mapping``: forward passes of the label-mapping vote: ILM once per epoch run over the training
  set, FLM once, RLM never (CLIP's ILM-VP like ILM; cross-modal none);
- ``test``: forward passes over the test set, once per evaluation of the schedule (every
  ``eval_every`` epochs and after the last epoch run; ``max_test`` caps the set); cross-modal adds
  the reference's quick validations and the test pass of the checkpoint they pick.

The counts come from the same ``Schedule`` object the loop executes; tests/test_loop.py counts the
images through each task's backbone in a real run and checks them against these.

An N-shot training set is taken as N x K images, capped by the split (classes with fewer than N
images make it smaller; the counts are then an upper bound). Device-hours follow from images per
second per architecture and phase, given (``--ips resnet50=400:1200``: train:forward) or measured
here on random weights (``--measure``); without either only the passes are printed.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from dataclasses import dataclass

from ..config import RunSpec
from ..errors import UnknownNameError
from ..grids import profile_runs
from ..models.random_init import random_architecture

#: (training images, test images, classes) of every registered target, as the loaders give them.
SPLIT_SIZES: dict[str, tuple[int, int, int]] = {
    "cifar10": (50_000, 10_000, 10), "svhn": (73_257, 26_032, 10), "gtsrb": (26_640, 12_630, 43),
    "dtd": (1_880, 1_880, 47), "flowers102": (1_020, 6_149, 102), "oxford_pets": (3_680, 3_669, 37),
    "eurosat": (24_300, 2_700, 10), "caltech101": (6_941, 1_736, 101),
    "mnist": (60_000, 10_000, 10), "fashion_mnist": (60_000, 10_000, 10),
    "yelp_polarity": (560_000, 38_000, 2), "imdb": (25_000, 25_000, 2), "ag_news": (120_000, 7_600, 4),
    "dbpedia_14": (560_000, 70_000, 14), "splice": (2_552, 638, 3),
}
PHASES = ("train", "mapping", "test")


@dataclass
class Passes:
    """Image passes of one run (or a sum of runs), by phase."""

    train: int = 0
    mapping: int = 0
    test: int = 0

    def __add__(self, other: Passes) -> Passes:
        return Passes(self.train + other.train, self.mapping + other.mapping, self.test + other.test)

    @property
    def total(self) -> int:
        return self.train + self.mapping + self.test


@functools.cache  # generated sets are read from their loader: once per dataset, not per run
def split_sizes(dataset: str) -> tuple[int, int, int]:
    """(train, test, classes) of ``dataset``: the table above, else read from the (offline) loader."""
    if dataset in SPLIT_SIZES:
        return SPLIT_SIZES[dataset]
    from .. import clip  # noqa: F401  (registers CLIP's generated targets)
    from ..data import list_datasets, load_split

    if dataset not in list_datasets() and not dataset.startswith("folder:"):  # folder: sets load like images
        from ..data.text import load_text_split

        try:
            train, test = load_text_split(dataset, "train"), load_text_split(dataset, "test")
        except UnknownNameError:
            raise UnknownNameError("dataset", dataset, {*SPLIT_SIZES, *list_datasets()}) from None
        return len(train.labels), len(test.labels), train.num_classes
    train, test = load_split(dataset, "train"), load_split(dataset, "test")
    return len(train), len(test), train.num_classes


def evaluations(epochs: int, eval_every: int) -> int:
    """Test passes of a run of ``epochs`` epochs: every ``eval_every`` and after the last (``loop.Schedule``)."""
    from ..loop import Schedule

    return Schedule(epochs, 1, eval_every).evaluations


def run_passes(spec: RunSpec) -> Passes:
    """Image passes of one run, by phase (see the module docstring), from the ``loop.Schedule`` the run executes."""
    from ..loop import Schedule

    n_train, n_test, classes = split_sizes(spec.dataset)
    if spec.n_shots is not None:
        n_train = min(n_train, spec.n_shots * classes)
    if spec.max_train is not None:
        n_train = min(n_train, spec.max_train)
    if spec.max_test is not None:
        n_test = min(n_test, spec.max_test)
    schedule = Schedule.for_run(spec, n_train)
    train = schedule.images(n_train, spec.effective_batch_size)
    test = schedule.evaluations * n_test
    if spec.task == "crossmodal":  # no mapping vote; the reference's quick validations on test examples, and the
        # full test pass of the checkpoint they pick (counted always: skipped when the pick is the last step)
        from ..crossmodal.train_crossmodal import VALIDATE_EVERY, VALIDATION_BATCHES

        validations = math.ceil(schedule.total_steps / VALIDATE_EVERY)
        quick = validations * min(n_test, VALIDATION_BATCHES * spec.effective_batch_size)
        return Passes(train=train, test=test + quick + (n_test if validations else 0))
    votes = {"ilm": schedule.epochs_run, "blm": schedule.epochs_run, "blm+": schedule.epochs_run,
             "ilm-vp": schedule.epochs_run, "flm": 1}.get(spec.method, 0)
    return Passes(train=train, mapping=min(votes, schedule.epochs_run) * n_train, test=test)


def arch_of(model: str) -> str:
    return model.split("/", 1)[0]


def hours(passes: Passes, ips: tuple[float, float]) -> float:
    """Device-hours of ``passes`` at ``ips`` = (train img/s, forward img/s)."""
    train_ips, forward_ips = ips
    return (passes.train / train_ips + (passes.mapping + passes.test) / forward_ips) / 3600


def measure_ips(arch: str, canvas: int = 224, batch: int = 64, device: str = "cpu", seconds: float = 5.0
                ) -> tuple[float, float]:
    """(train, forward) images per second of ``arch`` with random weights on ``device``, channels-last."""
    import torch

    module = random_architecture(arch).to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    x = torch.randn(batch, 3, canvas, canvas, device=device)

    def rate(step) -> float:
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, n = time.time(), 0
        while time.time() - start < seconds:
            step()
            n += batch
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return n / (time.time() - start)

    def train_step() -> None:
        xi = x.clone().requires_grad_(True)
        module(xi).sum().backward()

    def forward_step() -> None:
        with torch.no_grad():
            module(x)

    return rate(train_step), rate(forward_step)


def _parse_ips(values: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for item in values:
        arch, _, rates = item.partition("=")
        train, _, forward = rates.partition(":")
        out[arch] = (float(train), float(forward or train))
    return out


def main(argv: list[str] | None = None) -> int:
    from .. import profiles

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper", choices=profiles.PROFILES)
    parser.add_argument("--ips", nargs="*", default=[], metavar="ARCH=TRAIN:FORWARD",
                        help="images/s per architecture: training step and forward pass")
    parser.add_argument("--measure", action="store_true", help="time each architecture here (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target-halfwidth", type=float, default=None, metavar="H",
                        help="also print the seeds per cell and the hours for a +-H-point 95 %% interval on every gap")
    parser.add_argument("--pilot-sd", type=float, default=None, metavar="S",
                        help="with --target-halfwidth: the per-seed paired gap's sd a pilot measured (points)")
    parser.add_argument("--test-se", type=float, default=0.0, help="the test set's se of the gap (points)")
    parser.add_argument("--pilot-seeds", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="also run the preflight (preflight.py) on every run: "
                        "models, datasets and files present, images against the canvas, N-shot against the classes")
    args = parser.parse_args(argv)
    if args.target_halfwidth is not None and (args.pilot_sd is None or args.pilot_sd < 0
                                              or not args.target_halfwidth > 0):
        parser.error("--target-halfwidth needs a positive H and --pilot-sd S >= 0 (the paired gap's per-seed sd "
                     "from a pilot, e.g. docs/mini-study.md)")
    by_section = profile_runs(args.profile)
    ips = _parse_ips(args.ips)
    archs = sorted({arch_of(s.model) for specs in by_section.values() for s in specs})
    if args.measure:
        for arch in archs:
            if arch not in ips:
                try:
                    ips[arch] = measure_ips(arch, device=args.device)
                except UnknownNameError:
                    continue
                print(f"measured {arch} on {args.device}: train {ips[arch][0]:.1f} img/s, "
                      f"forward {ips[arch][1]:.1f} img/s", flush=True)
    print(f"profile {args.profile}: image passes (millions) by phase, and device-hours where images/s are known")
    print(f"{'section':16} {'runs':>6} {'train':>9} {'mapping':>9} {'test':>9} {'hours':>9}")
    total, total_hours, unknown = Passes(), 0.0, set()
    hours_by_section: dict[str, float] = {}
    for section, specs in by_section.items():
        passes, section_hours = Passes(), 0.0
        for spec in specs:
            p = run_passes(spec)
            passes += p
            arch = arch_of(spec.model)
            if arch in ips:
                section_hours += hours(p, ips[arch])
            else:
                unknown.add(arch)
        total += passes
        total_hours += section_hours
        hours_by_section[section] = section_hours
        print(f"{section:16} {len(specs):6d} {passes.train / 1e6:9.2f} {passes.mapping / 1e6:9.2f} "
              f"{passes.test / 1e6:9.2f} {section_hours:9.2f}")
    runs = sum(len(s) for s in by_section.values())
    print(f"{'total':16} {runs:6d} {total.train / 1e6:9.2f} {total.mapping / 1e6:9.2f} {total.test / 1e6:9.2f} "
          f"{total_hours:9.2f}")
    if unknown:
        print(f"hours leave out {sorted(unknown)}: no images/s given (--ips) or measured (--measure)")
    if args.target_halfwidth is not None:
        _print_target(args, by_section, hours_by_section, unknown)
    if args.check:
        from ..errors import VpcostError
        from .preflight import check

        try:
            check([s for specs in by_section.values() for s in specs], device=args.device)
        except VpcostError as exc:
            print(f"error: {exc}")
            return 2
        print("preflight: every run of the profile can run here")
    return 0


def _print_target(args: argparse.Namespace, by_section: dict[str, list[RunSpec]], hours_by_section: dict[str, float],
                  unknown: set[str]) -> None:
    """What a +-H interval on every gap costs, from a pilot's sd (sequential.planned_seeds). Sections that run
    the profile's seeds scale with the seeds; one-seed sections (CLIP, cross-modal on a CPU profile) stay."""
    from ..stats.sequential import planned_seeds, resolvable

    seeds_of = {section: len({s.seed for s in specs}) for section, specs in by_section.items() if specs}
    seeds_now = max(seeds_of.values())
    need = planned_seeds(args.target_halfwidth, args.pilot_sd, args.pilot_seeds, args.test_se)
    if seeds_now >= 2:
        half, mde = resolvable(args.pilot_sd, seeds_now, args.test_se)
        now = f"give +-{half:.1f} points and detect {mde:.1f} points at 80 % power"
    else:
        now = "give no interval"
    print(f"\nat a paired-gap sd of {args.pilot_sd:g} points (test-set se {args.test_se:g}): the profile's "
          f"{seeds_now} seed(s) {now}")
    if need is None:
        print(f"+-{args.target_halfwidth:g} points is out of reach at any number of seeds: the test set alone is "
              f"wider; evaluate on more test images")
        return
    scale = {section: need / k if k == seeds_now else 1.0 for section, k in seeds_of.items()}
    runs = sum(round(len(by_section[section]) * f) for section, f in scale.items())
    total = sum(hours_by_section[section] * f for section, f in scale.items())
    if total == 0 and unknown:
        hours = f"device-hours unknown: give images/s for {sorted(unknown)} (--ips) or --measure"
    else:
        hours = f"{total:.1f} device-hours" + (f" (leaving out {sorted(unknown)})" if unknown else "")
    print(f"+-{args.target_halfwidth:g} points (Stein, pilot of {args.pilot_seeds}): {need} seeds per cell, about "
          f"{runs} runs, {hours}")


if __name__ == "__main__":
    raise SystemExit(main())
