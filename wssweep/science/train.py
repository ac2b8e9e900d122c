"""The train loop of one stage, with Ash & Adams' stop rule.

A stage trains on a fixed pool of examples until train accuracy (measured after each epoch, in
eval mode) reaches a threshold, or plateaus, or an epoch cap is hit. A NaN/inf loss stops the
stage and marks it diverged instead of raising: divergence is a result to map, not an error.

Example:
    >>> import torch
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> g = torch.Generator().manual_seed(0)
    >>> result = train_stage(model, opt, lambda step: 0.1, x, y, x, y, batch_size=16,
    ...                      stop=StopRule(train_acc=0.99, plateau_std=0.002, plateau_window=3,
    ...                                    max_epochs=2, min_epochs=1), generator=g)
    >>> result.epochs, result.steps
    (2, 8)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1024  # examples per forward pass when measuring accuracy


@dataclass(frozen=True, kw_only=True)
class StopRule:
    """When a stage is done: threshold, plateau or cap.

    The fields are ``protocol.stop`` of the experiment config, which holds their defaults (Ash &
    Adams' protocol) and checks them.
    """

    train_acc: float  # fraction of training examples classified correctly
    plateau_std: float  # std of train accuracy (fraction) over the window ...
    plateau_window: int  # ... of this many epochs below which training has plateaued
    max_epochs: int
    min_epochs: int

    def reason(self, history: list[float]) -> str | None:
        """Why to stop after the epochs whose train accuracies are ``history``, or None."""
        if len(history) < self.min_epochs:
            return None
        if history[-1] >= self.train_acc:
            return "threshold"
        window = history[-self.plateau_window :]
        if len(window) == self.plateau_window and statistics.pstdev(window) < self.plateau_std:
            return "plateau"
        if len(history) >= self.max_epochs:
            return "max_epochs"
        return None


@dataclass
class StageResult:
    """What one stage of one arm did; accuracies in percent."""

    test_acc: float
    train_acc: float
    steps: int  # optimizer steps taken in this stage
    epochs: int
    seconds: float
    n_train: int
    stop_reason: str  # threshold | plateau | max_epochs | diverged
    diverged: bool = False
    lr: float | None = None  # target rate used (the meta-horizon's choice when it picked one)
    extra_steps: int = 0  # steps spent before training (meta-optimization candidates)
    extra: dict = field(default_factory=dict)
    val_acc: float = math.nan  # on the held-out validation split, when there is one


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of (x, y) that ``model`` classifies correctly, in eval mode.

    Only the accuracy: the loss is never needed here, and the count stays on the device until
    the end (one host sync, not one per batch).
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for i in range(0, len(x), EVAL_BATCH):
        correct += (model(x[i : i + EVAL_BATCH]).argmax(1) == y[i : i + EVAL_BATCH]).sum()
    model.train(was_training)
    return correct.item() / max(len(x), 1)


def batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batch indices over ``range(n)``, one epoch after another."""
    while True:
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n, batch_size):
            yield order[i : i + batch_size]


def train_stage(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Callable[[int], float],
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    batch_size: int,
    stop: StopRule,
    generator: torch.Generator,
    penalty: Callable[[], torch.Tensor] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> StageResult:
    """Train ``model`` on (x, y) until ``stop`` says so; the rate at step t is ``schedule(t)``.

    ``penalty`` (for example an L2-init term) is added to every mini-batch loss; ``on_epoch``
    is called after every epoch with the epoch number (from 1) and the train accuracy (fraction).
    ``x_val``/``y_val``, if given, are evaluated at the end like the test set (``val_acc``).
    """
    start = time.perf_counter()
    model.train()
    steps, history, reason, diverged = 0, [], None, False
    per_epoch = math.ceil(len(x) / batch_size)
    stream = batches(len(x), batch_size, generator, x.device)
    while reason is None:
        for _ in range(per_epoch):
            idx = next(stream)
            for group in optimizer.param_groups:
                group["lr"] = schedule(steps)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if penalty is not None:
                loss = loss + penalty()
            if not torch.isfinite(loss):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        if diverged:
            reason = "diverged"
        else:
            history.append(accuracy(model, x, y))
            reason = stop.reason(history)
            if on_epoch is not None:
                on_epoch(len(history), history[-1])
    train_acc = history[-1] if history else float("nan")
    test_acc = float("nan") if diverged else accuracy(model, x_test, y_test)
    val_acc = (float("nan") if diverged or x_val is None or y_val is None
               else accuracy(model, x_val, y_val))
    return StageResult(
        test_acc=100 * test_acc,
        train_acc=100 * train_acc,
        steps=steps,
        epochs=len(history),
        seconds=time.perf_counter() - start,
        n_train=len(x),
        stop_reason=reason,
        diverged=diverged,
        val_acc=100 * val_acc,
    )
