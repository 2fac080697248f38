"""The training skeleton every task runs: the schedule, the epoch loop, the curves and the mid-run checkpoints.

``run_epochs(task, schedule, ...)`` is the one loop. It owns what the three tasks (VP, CLIP, cross-modal)
used to repeat: the batch order (one seeded generator, one permutation per epoch), the step count and
the step cap, the evaluation points, the training loss and accuracy sums, the curves, the progress bar
and the checkpoint. A task supplies only what differs (``Task``): what happens at the start of an epoch
(the label-mapping vote), one optimizer step on a batch of indices, what ends an epoch (a scheduler
step) and the test pass. ``plan.run_passes`` counts a run's passes from the same ``Schedule``, so the
planner and the loop cannot drift apart (tests/test_loop.py checks both against a counted run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .config import RunSpec

CURVES = ("epoch", "train_loss", "train_acc", "lr", "eval_epoch", "test_acc")


@dataclass(frozen=True)
class Schedule:
    """How long a run trains and when it is evaluated: epochs of ``steps_per_epoch`` optimizer steps, capped at
    ``max_steps`` in all; the test pass every ``eval_every`` epochs and after the last epoch run."""

    epochs: int
    steps_per_epoch: int
    eval_every: int
    max_steps: int | None = None

    @classmethod
    def for_run(cls, spec: RunSpec, n_train: int) -> Schedule:
        return cls(spec.epochs, math.ceil(n_train / spec.effective_batch_size), spec.eval_every, spec.max_steps)

    @property
    def total_steps(self) -> int:
        full = self.epochs * self.steps_per_epoch
        return full if self.max_steps is None else min(full, self.max_steps)

    @property
    def epochs_run(self) -> int:
        """Epochs that train at least one step (the step cap can end the run early, mid-epoch)."""
        if self.steps_per_epoch == 0:
            return 0
        return min(self.epochs, math.ceil(self.total_steps / self.steps_per_epoch))

    def steps_in(self, epoch: int) -> int:
        """Optimizer steps of 0-based ``epoch``."""
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))

    def evaluates_after(self, epoch: int) -> bool:
        return (epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs_run

    @property
    def evaluations(self) -> int:
        return sum(self.evaluates_after(e) for e in range(self.epochs_run))

    def images(self, n_train: int, batch: int) -> int:
        """Training images passed through the backbone over the whole run."""
        return sum(min(n_train, self.steps_in(e) * batch) for e in range(self.epochs_run))


class Task(Protocol):
    """What one task supplies to ``run_epochs``."""

    def begin_epoch(self, epoch: int) -> None:
        """Before the epoch's first step (ILM re-votes its label mapping here)."""

    def step(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step on the training examples ``index``; ``step`` counts from 0 over the run.
        Returns (loss, logits, labels) of the batch."""

    def end_epoch(self, epoch: int) -> float:
        """After the epoch's last step; returns the learning rate the curves record for it."""

    def evaluate(self, epoch: int) -> float:
        """The test pass after ``epoch``: keeps the test logits, returns the accuracy (%)."""

    def state(self) -> dict[str, Any]:
        """Everything of the task a resumed run needs (checkpoints)."""

    def load_state(self, state: dict[str, Any]) -> None: ...


def cross_entropy_step(optimizer: torch.optim.Optimizer, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimizer step on the cross-entropy of ``logits``; returns the loss (the heads of CLIP and LP step so)."""
    loss = torch.nn.functional.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


@dataclass
class Progress:
    """Where a run is: epochs done, optimizer steps taken, the curves so far."""

    epoch: int = 0
    step: int = 0
    curves: dict[str, list] = field(default_factory=lambda: {k: [] for k in CURVES})
    resumed_at: int = 0  # the epoch a resumed run started from (0: from scratch)


def train_epoch(task: Task, order: torch.Tensor, batch: int, steps: int, first_step: int, device: torch.device
                ) -> tuple[float, float]:
    """``steps`` optimizer steps over ``order`` in batches; returns (mean loss, accuracy %) of what was trained."""
    # Running sums stay on the device (no host sync per step on a GPU); float64 keeps the loss sum what Python
    # floats would give.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for k, index in enumerate(order.split(batch)[:steps]):
        loss, logits, labels = task.step(index, first_step + k)
        total_loss += loss.detach().double() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
    return float(total_loss) / max(seen, 1), 100 * int(correct) / max(seen, 1)


def run_epochs(task: Task, schedule: Schedule, n_train: int, batch: int, seed: int, device: torch.device, *,
               saver: Any = None, desc: str = "", progress: bool = True) -> Progress:
    """Train ``task`` for ``schedule``: the batch order from ``seed``, the curves, evaluations and checkpoints.

    ``saver``: a ``checkpoint.Checkpointer`` (None: no checkpoints); a run it holds a state for resumes there.
    """
    from tqdm.auto import tqdm

    from .checkpoint import rng_states, set_rng_states

    generator = torch.Generator().manual_seed(seed)
    done = Progress()
    if saver is not None and (state := saver.load()) is not None:  # resume: everything later epochs depend on
        done = Progress(state["epoch"], state["step"], state["curves"], resumed_at=state["epoch"])
        generator.set_state(state["generator"])
        set_rng_states(state["rng"])
        task.load_state(state["task"])
    curves = done.curves
    bar = tqdm(range(done.epoch, schedule.epochs_run), desc=desc, disable=not progress, leave=False,
               initial=done.epoch, total=schedule.epochs_run)
    for epoch in bar:
        task.begin_epoch(epoch)
        order = torch.randperm(n_train, generator=generator)
        steps = schedule.steps_in(epoch)
        loss, acc = train_epoch(task, order, batch, steps, done.step, device)
        done.step += steps
        curves["lr"].append(task.end_epoch(epoch))
        curves["epoch"].append(epoch + 1)  # 1-based
        curves["train_loss"].append(loss)
        curves["train_acc"].append(acc)
        if schedule.evaluates_after(epoch):
            curves["eval_epoch"].append(epoch + 1)
            curves["test_acc"].append(task.evaluate(epoch))
            bar.set_postfix(loss=f"{loss:.3f}", test=f"{curves['test_acc'][-1]:.2f}%")
        done.epoch = epoch + 1
        if saver is not None and saver.due():
            saver.save({"epoch": done.epoch, "step": done.step, "curves": curves, "generator": generator.get_state(),
                        "rng": rng_states(), "task": task.state()})
    return done
