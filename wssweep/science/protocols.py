"""Data-arrival protocols: which training examples each stage sees.

- ``batch``: stage 1 trains on a random ``fraction`` of the training set, stage 2 on all of it
  (Ash & Adams' 50 % -> 100 % protocol).
- ``online``: the training set is cut into ``chunks`` equal random chunks; stage j trains on
  chunks 1..j (Ash & Adams' online protocol, DASH's protocol).
- ``active``: as online, but after stage 1 each new chunk is picked from the unlabeled rest by
  margin sampling with the arm's current model.

Example:
    >>> import torch
    >>> pools = stage_pools("online", 10, fraction=0.5, chunks=5,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> [len(p) for p in pools]
    [2, 4, 6, 8, 10]
"""

from __future__ import annotations

import torch
from torch import nn

from wssweep.science.train import EVAL_BATCH


def stage_pools(
    kind: str, n: int, *, fraction: float, chunks: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Index sets, one per stage, each containing the previous one (new data is appended).

    ``fraction`` is read by ``batch`` only, ``chunks`` by ``online`` and ``active`` only; both are
    ``protocol.*`` of the experiment config, which holds their defaults.

    For ``active`` only the first pool is returned: later ones depend on the model
    (see ``margin_select``).
    """
    order = torch.randperm(n, generator=generator)
    if kind == "batch":
        first = max(1, round(fraction * n))
        return [order[:first], order]
    bounds = [round(j * n / chunks) for j in range(1, chunks + 1)]
    pools = [order[:b] for b in bounds]
    return pools[:1] if kind == "active" else pools


@torch.no_grad()
def margin_select(model: nn.Module, x_pool: torch.Tensor, k: int) -> torch.Tensor:
    """Positions in ``x_pool`` of the ``k`` examples with the smallest top-2 softmax margin."""
    was_training = model.training
    model.eval()
    margins = []
    for i in range(0, len(x_pool), EVAL_BATCH):
        top2 = model(x_pool[i : i + EVAL_BATCH]).softmax(1).topk(2, dim=1).values
        margins.append(top2[:, 0] - top2[:, 1])
    model.train(was_training)
    # A stable sort keeps ties in pool order, so the selection is deterministic.
    return torch.sort(torch.cat(margins), stable=True).indices[:k]
