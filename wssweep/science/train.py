"""The train loop of one stage, with Ash & Adams' stop rule.

A stage trains on a fixed pool of examples until train accuracy (measured after each epoch, in
eval mode) reaches a threshold, or plateaus, or an epoch cap is hit. A NaN/inf loss stops the
stage and marks it diverged instead of raising: divergence is a result to map, not an error.

On CUDA the loop never waits for the device within an epoch: the loss is checked on the device
and read back once per epoch (a diverged stage then stops at the end of that epoch, counting the
steps before its first non-finite loss, as on the CPU); the conv models' forward pass runs under
bfloat16 autocast and ResNet-18 in channels_last (``models.amp_dtype``, ``models.memory_format``).
On the CPU none of this applies: every step's loss is checked on the host, in float32 (or 64).

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

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wssweep.science.models import amp_dtype, memory_format

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


def loss_checked_each_step(device: torch.device) -> bool:
    """Whether the stage loops read each step's loss back to check it for NaN/inf: on the CPU
    (free there); not on CUDA, where reading a value waits for every queued kernel, so the
    check accumulates on the device and is read once per epoch."""
    return device.type != "cuda"


def amp_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def to_memory_format(model: nn.Module, optimizer: torch.optim.Optimizer,
                     fmt: torch.memory_format) -> None:
    """``model``'s 4-D parameters and their optimizer state in ``fmt``, in place (the parameter
    objects stay those the optimizer holds; the state matches them for its fused kernels)."""
    model.to(memory_format=fmt)
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.ndim == 4:
                state[key] = value.contiguous(memory_format=fmt)


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

    On CUDA (``loss_checked_each_step``) a stage whose loss turns non-finite trains to the end
    of that epoch before it stops as diverged: ``steps`` still counts the steps before that
    loss, but the model and optimizer are left as the whole epoch left them.
    """
    start = time.perf_counter()
    model.train()
    device = x.device
    each_step = loss_checked_each_step(device)
    amp = amp_dtype(model, device)
    fmt = memory_format(model, device)
    if fmt is not None:
        to_memory_format(model, optimizer, fmt)
    steps, history, reason, diverged = 0, [], None, False
    per_epoch = math.ceil(len(x) / batch_size)
    stream = batches(len(x), batch_size, generator, device)
    while reason is None:
        if not each_step:  # the epoch's losses all finite so far, and the steps until then
            finite = torch.ones((), dtype=torch.bool, device=device)
            finite_steps = torch.zeros((), dtype=torch.long, device=device)
            epoch_start = steps
        for _ in range(per_epoch):
            idx = next(stream)
            for group in optimizer.param_groups:
                group["lr"] = schedule(steps)
            xb = x[idx] if fmt is None else x[idx].contiguous(memory_format=fmt)
            with amp_context(device, amp):
                loss = F.cross_entropy(model(xb), y[idx])
            if penalty is not None:
                loss = loss + penalty()
            if each_step:
                if not torch.isfinite(loss):
                    diverged = True
                    break
            else:
                finite.logical_and_(torch.isfinite(loss.detach()))
                finite_steps.add_(finite)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        if not each_step and not finite.item():  # the epoch's one read-back
            diverged, steps = True, epoch_start + int(finite_steps.item())
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
