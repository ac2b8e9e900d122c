"""Short-horizon meta-optimization of the warm stage's learning rate (Wu et al. 2018).

Each candidate rate trains a copy of the warm-started model for ``horizon`` steps on the same
batches; the meta-objective is the training loss on the batches that follow. Short horizons are
known to favour rates that are too small (short-horizon bias): the sweep axis ``meta_horizon``
maps how that choice moves the warm-start gap.

Example:
    >>> import torch
    >>> x, y = torch.randn(256, 5), torch.randint(0, 3, (256,))
    >>> pick = short_horizon_lr(torch.nn.Linear(5, 3), lambda p, lr: torch.optim.SGD(p, lr=lr),
    ...                         x, y, horizon=4, candidates=[1e-3, 1e-1], batch_size=32, seed=0,
    ...                         score_batches=5)
    >>> pick.steps
    8
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wssweep.science.optim import load_optimizer_state
from wssweep.science.train import batches


@dataclass
class MetaResult:
    lr: float  # the winning candidate
    scores: dict[float, float]  # candidate -> meta-objective (inf when it diverged)
    steps: int  # optimizer steps spent on all candidates (compute the warm start paid)


def log_grid(lo: float, hi: float, n: int) -> list[float]:
    """``n`` rates evenly spaced in log between ``lo`` and ``hi``."""
    return [float(v) for v in np.geomspace(lo, hi, n)]


def short_horizon_lr(
    model: nn.Module,
    make_optimizer: Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    horizon: int,
    candidates: list[float],
    batch_size: int,
    seed: int,
    score_batches: int,
    optimizer_state: dict | None = None,
) -> MetaResult:
    """The candidate rate with the lowest training loss after ``horizon`` steps.

    The score is the mean loss on the ``score_batches`` batches after the horizon (the config's
    ``warm.meta_score_batches``).

    Every candidate starts from ``model`` (and ``optimizer_state`` when the arm keeps its
    optimizer) and sees the same batch sequence, drawn from ``seed``; ``model`` is not changed.
    """
    scores = {}
    for lr in candidates:
        trial = copy.deepcopy(model)
        trial.train()
        opt = make_optimizer(trial.parameters(), lr)
        if optimizer_state is not None:
            load_optimizer_state(opt, optimizer_state)  # each its own copy
            for group in opt.param_groups:
                group["lr"] = lr
        stream = batches(len(x), batch_size, torch.Generator().manual_seed(seed), x.device)
        score = 0.0
        for _ in range(horizon):
            idx = next(stream)
            loss = F.cross_entropy(trial(x[idx]), y[idx])
            if not torch.isfinite(loss):
                score = math.inf
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if score == 0.0:
            trial.eval()
            with torch.no_grad():
                losses = [F.cross_entropy(trial(x[i]), y[i]).item()
                          for i in (next(stream) for _ in range(score_batches))]
            score = sum(losses) / len(losses)
            score = score if math.isfinite(score) else math.inf
        scores[lr] = score
    best = min(candidates, key=lambda lr: scores[lr])
    return MetaResult(lr=best, scores=scores, steps=horizon * len(candidates))
