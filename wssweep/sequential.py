"""Seeds until decided: a group-sequential verdict whose error rate holds under optional stopping.

A sweep with ``seeds: {min: 3, max: 40, until: decided}`` runs ``min`` seeds of every setting,
then adds seeds only to settings still undecided, at planned *looks*: the seed count doubles
(3, 6, 12, 24, 40) until ``max``. Looking at the data after every batch and stopping when it
looks decided would inflate a fixed-N test's error rate; here each look spends a share of the
setting's error rate, by the Pocock-type spending function of Lan & DeMets (1983),
``α(t) = α · ln(1 + (e − 1) t)`` at information fraction ``t = n / max``, and the test at look k
is the one-sided paired t-test of ``wssweep.verdicts`` at level ``α(t_k) − α(t_{k−1})``. By
Bonferroni's inequality over the looks the chance of ever rejecting a true null is at most
``α`` however the looks fall out (valid for the planned looks; no assumption on how the looks'
statistics correlate). Across the settings of a sweep each gets ``α / m`` (Bonferroni; Holm's
step-down does not carry over to settings stopping at different looks). Pocock-type spending
lets a clear setting stop at the first looks, where O'Brien–Fleming's would spend almost nothing;
``tests/test_sequential.py`` measures the error rate and the seeds it saves by simulation.

Example:
    >>> plan = Plan(min_seeds=3, max_seeds=40)
    >>> plan.looks
    (3, 6, 12, 24, 40)
    >>> decide((0.1, -0.2, 0.0, 0.1, -0.1, 0.05), plan, tolerance=1.0, alpha=0.05)
    'closed'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from wssweep.verdicts import pvalues

#: The name the map and validate give this design.
DESIGN_NAME = ("group-sequential one-sided t-tests, Pocock-type alpha spending (Lan & DeMets "
               "1983) over the looks, Bonferroni across settings")


@dataclass(frozen=True)
class Plan:
    """When a setting is looked at: ``min_seeds``, then doubling, capped at ``max_seeds``."""

    min_seeds: int
    max_seeds: int

    @cached_property
    def looks(self) -> tuple[int, ...]:
        out, n = [], self.min_seeds
        while n < self.max_seeds:
            out.append(n)
            n *= 2
        return (*out, self.max_seeds)

    def next_look(self, n: int) -> int | None:
        """The seed count of the look after ``n`` seeds; ``None`` at or past the last."""
        return next((k for k in self.looks if k > n), None)


def spent(alpha: float, fraction: float) -> float:
    """Pocock-type alpha spent by information fraction ``fraction`` (0 at 0, ``alpha`` at 1)."""
    return alpha * math.log(1 + (math.e - 1) * min(max(fraction, 0.0), 1.0))


def look_levels(plan: Plan, alpha: float) -> tuple[float, ...]:
    """The level of the test at each look: the alpha spent since the previous look.

    Example:
        >>> levels = look_levels(Plan(3, 40), 0.05)
        >>> round(sum(levels), 12), [round(a, 4) for a in levels]
        (0.05, [0.0061, 0.0054, 0.0093, 0.0146, 0.0146])
    """
    fractions = [n / plan.max_seeds for n in plan.looks]
    cumulative = [spent(alpha, t) for t in fractions]
    return tuple(b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True))


def decide(diffs: Sequence[float], plan: Plan, tolerance: float, alpha: float) -> str | None:
    """The verdict of one setting at its current look, or ``None`` to add seeds.

    ``diffs`` are its paired differences (reference cold − warm, points) so far; ``alpha`` is
    this setting's share of the sweep's error rate. Only a planned look decides: between looks
    (or before the first) the answer is ``None`` unless the last look has passed. At the last
    look an undecided setting is ``inconclusive``.
    """
    return decide_many([diffs], plan, tolerance, alpha)[0]


def decide_many(samples: Sequence[Sequence[float]], plan: Plan, tolerance: float,
                alpha: float) -> list[str | None]:
    """``decide`` for many settings at once (their tests vectorized by sample size)."""
    clean = [[d for d in x if math.isfinite(d)] for x in samples]
    levels = look_levels(plan, alpha)
    at_look = [i for i, x in enumerate(clean) if len(x) in plan.looks]
    out: list[str | None] = ["inconclusive" if len(x) >= plan.max_seeds else None
                             for x in clean]
    if not at_look:
        return out
    judged = [clean[i] for i in at_look]
    p_closed = pvalues(judged, tolerance, "less")
    p_better = pvalues(judged, 0.0, "less")
    p_open = pvalues(judged, tolerance, "greater")
    for k, i in enumerate(at_look):
        level = levels[plan.looks.index(len(clean[i]))]
        if p_closed[k] <= level:
            out[i] = "better" if p_better[k] <= level else "closed"
        elif p_open[k] <= level:
            out[i] = "open"
    return out
